"""A phantom cycle held in memory as the Slicer scene holds it (tests of the job and the scene display)."""

from __future__ import annotations

import SimpleITK as sitk

from startnet.cycle import RunOptions, analyse_cycle, registered_from_transforms, structures_from_masks
from startnet.cycle.job import JobInputs
from startnet.dicomio import Cycle, Timepoint
from startnet.physics import LU177


def phantom_job_inputs(phantom, out_dir) -> JobInputs:
    """The phantom's cycle as the scene holds it: images, true transforms, labels on the CT grid."""
    timepoints = []
    for tp in phantom.timepoints:
        timepoints.append(Timepoint(
            hours_post_injection=tp.hours_post_injection, acquisition_datetime=tp.acquisition_datetime,
            spect_bqml=tp.spect_bqml, ct_hu=tp.ct_hu, spect_series_uid=f"2.25.1{tp.index}1",
            ct_series_uid=f"2.25.1{tp.index}2", frame_of_reference_uid=f"2.25.1{tp.index}3",
            study_uid=f"2.25.1{tp.index}4", conversion={"method": "phantom Bq/mL"}, source_files=0))
    cycle = Cycle(timepoints=timepoints, injection_datetime=phantom.injection_datetime,
                  injected_activity_mbq=phantom.config.injected_activity_mbq, nuclide=LU177,
                  patient_id=phantom.config.patient_id, study_uids=[tp.study_uid for tp in timepoints],
                  warnings=[], log=["phantom in memory"], overrides_applied={})
    labels = phantom.labels
    masks = {name: sitk.Cast(labels == value, sitk.sitkUInt8) for value, name in phantom.label_names.items()}
    transforms = [None if tp.index == phantom.reference_index else tp.true_transform for tp in phantom.timepoints]
    options = RunOptions(input_dir="", out_dir=str(out_dir), reference_timepoint=phantom.reference_index,
                         method="led", write_scene=False, write_report=False)
    return JobInputs(cycle, phantom.reference_index, transforms, masks, options,
                     colours={"kidney_left": (0.9, 0.4, 0.3)}, structures_source="scene segmentation 'Structures'")



def analyse_in_memory(inputs: JobInputs):
    """The job's chain in this process: registered_from_transforms -> structures -> analyse_cycle."""
    registered = registered_from_transforms(inputs.cycle, inputs.reference_index, inputs.transforms)
    structures = structures_from_masks(inputs.masks, registered.reference_grid, ct_hu=registered.ct_hu,
                                       colours=inputs.colours, source=inputs.structures_source)
    return analyse_cycle(inputs.options, registered, structures)
