"""The Dosimetry module's inputs from the scene and the accumulation panel's scene side (slicer-core).

- job_inputs: the cycle state plus the user's segmentation node (segments at the reference CT's
  geometry) give a job whose masks are exactly the segmentation's, with the segment colours;
- accumulate_and_show: two cycles summed, shown as a dose (SlicerRT attributes), refilled on a re-run.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from phantom_cycle import analyse_in_memory, phantom_job_inputs

from startnet.cycle import RunOptions
from startnet.cycle.job import read_job, write_job
from startnet.cycle.outputs import prepare_output_dir, write_outputs
from startnet.errors import InputError
from startnet.mrml.accumulation import accumulate_and_show
from startnet.mrml.dosimetry_job import job_inputs
from startnet.mrml.scene import new_scene
from startnet.mrml.segmentation_export import set_reference_geometry
from startnet.mrml.segmentations import masks_to_segmentation
from startnet.mrml.volumes import sitk_to_volume
from startnet.phantom import PhantomConfig, build_phantom


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=5))


def test_job_inputs_take_the_scene_segmentation_at_ct_geometry(phantom, tmp_path):
    scene = new_scene()
    memory = phantom_job_inputs(phantom, tmp_path / "out")
    ct = sitk_to_volume(scene, phantom.ct_hu, "CT reference")
    labels = sitk.GetArrayFromImage(phantom.labels)
    masks = {name: labels == value for value, name in phantom.label_names.items()
             if name in ("kidney_left", "kidney_right", "liver")}
    segmentation = masks_to_segmentation(scene, masks, phantom.ct_hu, "Structures",
                                         colours={"kidney_left": (0.1, 0.2, 0.3)})
    cycle_state = SimpleNamespace(cycle=memory.cycle, reference_index=memory.reference_index,
                                  transforms=memory.transforms, reference_ct_files=None)
    with pytest.raises(InputError, match="no reference geometry"):
        job_inputs(scene, cycle_state, segmentation, memory.options)
    set_reference_geometry(segmentation, ct)
    inputs = job_inputs(scene, cycle_state, segmentation, memory.options)
    assert list(inputs.masks) == list(masks)
    assert inputs.colours["kidney_left"] == pytest.approx((0.1, 0.2, 0.3))
    assert inputs.structures_source == "scene segmentation 'Structures'"
    write_job(tmp_path / "job", inputs)
    back = read_job(tmp_path / "job")
    for name, mask in masks.items():
        assert np.array_equal(sitk.GetArrayViewFromImage(back.masks[name]) != 0, mask), name
    with pytest.raises(InputError, match="no segmentation"):
        job_inputs(scene, cycle_state, None, memory.options)


def test_accumulate_two_cycles_in_the_scene(phantom, tmp_path):
    result = analyse_in_memory(phantom_job_inputs(phantom, tmp_path / "unused"))
    runs = []
    for cycle in (1, 2):
        options = RunOptions(input_dir="", out_dir=str(tmp_path / f"cycle{cycle}"), method="led", cycle=cycle,
                             write_scene=False, write_report=False)
        write_outputs(result, options, prepare_output_dir(options.out_dir))
        runs.append(options.out_dir)
    scene = new_scene()
    shown = accumulate_and_show(scene, runs, str(tmp_path / "sum"))
    count = scene.GetNumberOfNodes()
    assert shown["cumulative"]["cumulative_kidneys_mean_gy"] == pytest.approx(2 * result.results["kidneys_mean_gy"],
                                                                              abs=1e-3)
    assert shown["cumulative_dose"].GetAttribute("DicomRtImport.DoseVolume") == "1"
    assert shown["cumulative_dose"].GetDisplayNode().GetApplyThreshold() == 1
    again = accumulate_and_show(scene, runs, str(tmp_path / "sum"))
    assert scene.GetNumberOfNodes() == count
    assert again["cumulative_dose"].GetID() == shown["cumulative_dose"].GetID()
