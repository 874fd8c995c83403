"""Dosimetry from the scene: the loaded time points, their current transforms and the segmentation.

    cycle_inputs_from_scene -> registered_from_transforms -> structures from the segmentation
    node (labelmap at the reference CT geometry) -> analyse_cycle -> outputs (options.out_dir)

It never reads the DICOM folder (``options.input_dir`` is ignored) and never registers: what the
user sees in the scene, including a transform corrected by hand, is what is dosed. This is what
the Dosimetry module runs, in process or inside a background job.
"""

from __future__ import annotations

from typing import Optional

import SimpleITK as sitk

from startnet.cycle.run import STAGES, CycleResult, RunOptions, analyse_cycle
from startnet.errors import InputError
from startnet.mrml.cycle_inputs import SceneCycleInputs, cycle_inputs_from_scene
from startnet.progress import Progress, ProgressCallback


def structures_from_segmentation_node(scene, inputs: SceneCycleInputs, reference_grid: sitk.Image,
                                      ct_hu: Optional[sitk.Image]):
    """Structures on the reference SPECT grid from the segmentation node, read at the reference CT geometry."""
    from startnet.cycle.segments import structures_from_masks
    from startnet.mrml.segmentation_export import segmentation_labelmap_on_geometry

    if inputs.segmentation_node is None:
        raise InputError("no segmentation: select one (kidneys, tumours) or make it in Dosimetry Segmentation")
    if inputs.reference_ct_node is None:
        raise InputError("the reference time point has no CT in the scene; the segmentation is read at its geometry")
    segmentation = segmentation_labelmap_on_geometry(scene, inputs.segmentation_node, inputs.reference_ct_node)
    masks = {}
    for name, mask in segmentation.masks.items():
        image = sitk.GetImageFromArray(mask.astype("uint8"))
        image.CopyInformation(segmentation.reference)
        masks[name] = image
    return structures_from_masks(masks, reference_grid, ct_hu=ct_hu, colours=segmentation.colors,
                                 source=segmentation.source)


def dosimetry_from_scene(scene, options: RunOptions, *, cycle_node=None, segmentation_node=None,
                         progress: Optional[ProgressCallback] = None, write: bool = True) -> CycleResult:
    """Absorbed doses of the scene's cycle; outputs written to ``options.out_dir`` unless ``write`` is False."""
    from startnet.cycle.outputs import prepare_output_dir, write_outputs
    from startnet.cycle.register import registered_from_transforms

    if options.segmentation_path or options.labels_path:
        raise InputError("dosimetry from the scene takes the segmentation node, not --segmentation/--labels files")
    options.validate()
    staging = prepare_output_dir(options.out_dir) if write else None
    steps = Progress(STAGES, progress)
    steps.stage("load", "reading the time points from the scene")
    inputs = cycle_inputs_from_scene(scene, cycle_node, segmentation_node)
    if options.calibration_path:  # the camera's CAL.json, chosen by the time points' SPECT headers
        from startnet.calibration.use import apply_to_loaded_cycle

        apply_to_loaded_cycle(options, inputs.cycle)
    steps.stage("register", "time points on the reference with the scene's transforms")
    registered = registered_from_transforms(inputs.cycle, inputs.reference_index, inputs.transforms)
    steps.stage("segment", "structures from the segmentation node")
    structures = structures_from_segmentation_node(scene, inputs, registered.reference_grid, registered.ct_hu)
    result = analyse_cycle(options, registered, structures, steps, reference_ct_files=inputs.reference_ct_files)
    result.results["provenance"]["parameters"]["segmentation"] = structures.source
    result.results["provenance"]["input_source"] = "scene"
    if write:
        steps.stage("outputs", "writing results, exports, scene and report")
        result.files = write_outputs(result, options, staging, steps)
    steps.done()
    result.results["provenance"]["timings_s"] = {k: round(v, 3) for k, v in steps.timings_s.items()}
    return result
