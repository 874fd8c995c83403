"""The background job's inputs from the scene: the loaded cycle, its transforms, the segmentation.

:func:`job_inputs_from_scene` is the one call the Dosimetry module makes before it starts a job:
the time points, transforms and reference come from the scene's cycle state
(:func:`startnet.mrml.cycle_inputs.cycle_inputs_from_scene`), the segments from the user's
segmentation node at the reference CT's geometry
(:func:`startnet.mrml.segmentation_export.segmentation_labelmap_on_geometry`: a closed-surface or
planar-contour source is converted first). Nothing is read from the DICOM folder again and
nothing is registered again.
"""

from __future__ import annotations

from typing import Any

from startnet.cycle.job import JobInputs
from startnet.errors import InputError


def segmentation_reference_volume(segmentation_node):
    """The volume the segmentation is edited on (its reference image geometry node), or None."""
    role = segmentation_node.GetReferenceImageGeometryReferenceRole()
    return segmentation_node.GetNodeReference(role)


def job_inputs(scene, cycle_inputs: Any, segmentation_node, options, *, reference_ct_node=None) -> JobInputs:
    """JobInputs of ``cycle_inputs`` (cycle, reference_index, transforms, reference_ct_files) and the
    segments of ``segmentation_node`` on ``reference_ct_node`` (default: the segmentation's reference
    geometry volume, which Dosimetry Segmentation sets to the reference CT)."""
    from startnet.mrml.segmentation_export import segmentation_labelmap_on_geometry

    if segmentation_node is None:
        raise InputError("no segmentation: segment the kidneys (Dosimetry Segmentation) or select a segmentation")
    reference_ct_node = reference_ct_node or segmentation_reference_volume(segmentation_node)
    if reference_ct_node is None:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' has no reference geometry; "
                         "select the reference CT in Dosimetry Segmentation")
    segmentation = segmentation_labelmap_on_geometry(scene, segmentation_node, reference_ct_node)
    masks = {name: segmentation.mask_image(name) for name in segmentation.names}
    return JobInputs(cycle_inputs.cycle, int(cycle_inputs.reference_index), list(cycle_inputs.transforms), masks,
                     options, colours=dict(segmentation.colors),
                     reference_ct_files=(list(cycle_inputs.reference_ct_files)
                                         if cycle_inputs.reference_ct_files else None),
                     structures_source=segmentation.source)


def job_inputs_from_scene(scene, options, *, segmentation_node=None, cycle_node=None) -> JobInputs:
    """The job's inputs from the scene's cycle state (the time points as loaded, their transforms as the
    user left them); ``segmentation_node`` overrides the one the cycle references. The segments are
    taken on the cycle's reference CT."""
    from startnet.mrml.cycle_inputs import cycle_inputs_from_scene

    cycle_inputs = cycle_inputs_from_scene(scene, cycle_node=cycle_node, segmentation_node=segmentation_node)
    return job_inputs(scene, cycle_inputs, cycle_inputs.segmentation_node, options,
                      reference_ct_node=cycle_inputs.reference_ct_node)


def check_job_calibration(inputs: JobInputs):
    """The calibration the job will apply (``options.calibration_path``: a CAL.json or a folder of them), chosen
    now for the cycle's camera so that a missing or another camera's file is refused before the job starts;
    None without a calibration path. The job chooses it again and applies it
    (:func:`startnet.calibration.use.apply_to_loaded_cycle`); ``inputs`` are not changed."""
    from startnet.calibration.use import loaded_cycle_camera, select_calibration

    path = getattr(inputs.options, "calibration_path", None)
    if not path:
        return None
    return select_calibration(str(path), loaded_cycle_camera(inputs.cycle))
