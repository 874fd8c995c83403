"""The cycle's dosimetry inputs read from the scene: time points, their CURRENT transforms, segmentation.

Nothing is read from DICOM and nothing is registered: the time points' images come from the
volume nodes the cycle node references (their voxels and geometry in scanner coordinates),
the timing and calibration provenance from the cycle node's metadata, and each time point's
transform from the transform hierarchy its SPECT volume is under as it is now (a correction made
in the Transforms module counts). Transforms are returned in the convention of
:func:`startnet.cycle.register.registered_from_transforms`: reference points -> time point points
(LPS), i.e. the SPECT's transform from world composed with the inverse of the reference's.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np
import SimpleITK as sitk

from startnet.dicomio import Cycle, Timepoint
from startnet.errors import InputError
from startnet.mrml import cycle_state as state
from startnet.mrml.geometry import matrix_to_sitk_affine, sitk_transform_to_matrix
from startnet.mrml.transforms import transform_from_world_to_sitk
from startnet.mrml.volumes import volume_to_sitk
from startnet.physics.lu177 import LU177


@dataclass
class SceneCycleInputs:
    """What the dosimetry takes from the scene."""

    cycle: Cycle
    reference_index: int
    transforms: List[Optional[sitk.Transform]]  # reference -> time point (LPS); None = identity
    reference_ct_files: List[str]
    segmentation_node: Any
    cycle_node: Any
    reference_ct_node: Any = None
    warnings: List[str] = field(default_factory=list)


def _nuclide(name: str):
    if name != LU177.name:
        raise InputError(f"cycle node: nuclide {name!r} is not supported; expected {LU177.name}")
    return LU177


def _when(text: str, what: str) -> _dt.datetime:
    try:
        value = _dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InputError(f"cycle node: {what} {text!r} is not an ISO datetime") from None
    if value.tzinfo is None:
        raise InputError(f"cycle node: {what} {text!r} has no time zone")
    return value


def cycle_from_scene(cycle_node) -> Cycle:
    """A startnet Cycle from the scene's volume nodes (scanner coordinates) and the stored metadata."""
    meta = state.cycle_metadata(cycle_node)
    timepoints = []
    for index in range(state.timepoint_count(cycle_node)):
        tp = state.timepoint_metadata(cycle_node, index)
        spect_node = state.timepoint_node(cycle_node, "spect", index)
        if spect_node is None:
            raise InputError(f"time point {index} ({tp['hours_post_injection']:.1f} h): its SPECT volume was removed "
                             "from the scene; load the cycle again")
        ct_node = state.timepoint_node(cycle_node, "ct", index)
        spect = sitk.Cast(volume_to_sitk(spect_node, harden_parent_transform=False), sitk.sitkFloat32)
        ct = volume_to_sitk(ct_node, harden_parent_transform=False) if ct_node is not None else None
        timepoints.append(Timepoint(
            hours_post_injection=float(tp["hours_post_injection"]),
            acquisition_datetime=_when(tp["acquisition_datetime"], f"time point {index} acquisition datetime"),
            spect_bqml=spect, ct_hu=ct, spect_series_uid=tp["spect_series_uid"], ct_series_uid=tp["ct_series_uid"],
            frame_of_reference_uid=tp["frame_of_reference_uid"], study_uid=tp["study_uid"],
            conversion=tp["conversion"], source_files=int(tp["source_files"]), spect_file=tp["spect_file"],
            warnings=list(tp["warnings"])))
    hours = [tp.hours_post_injection for tp in timepoints]
    if hours != sorted(hours):
        raise InputError(f"cycle node: time points are not in chronological order ({hours} h)")
    return Cycle(timepoints=timepoints, injection_datetime=_when(meta["injection_datetime"], "injection datetime"),
                 injected_activity_mbq=float(meta["injected_activity_mbq"]), nuclide=_nuclide(meta["nuclide"]),
                 patient_id=meta["patient_id"], study_uids=list(meta["study_uids"]), warnings=list(meta["warnings"]),
                 log=list(meta["log"]), overrides_applied=dict(meta["overrides_applied"]),
                 injection_source=meta["injection_source"], activity_source=meta["activity_source"],
                 input_dir=meta["input_dir"])


def _padded(grid: sitk.Image, voxels: int = 1) -> sitk.Image:
    size = [n + 2 * voxels for n in grid.GetSize()]
    out = sitk.Image(size, sitk.sitkUInt8)
    out.SetSpacing(grid.GetSpacing())
    out.SetDirection(grid.GetDirection())
    out.SetOrigin(grid.TransformContinuousIndexToPhysicalPoint([-float(voxels)] * 3))
    return out


def _from_world(volume_node, grid: sitk.Image, what: str) -> Optional[sitk.Transform]:
    parent = volume_node.GetParentTransformNode()
    if parent is None:
        return None
    try:
        return transform_from_world_to_sitk(parent, grid)
    except Exception as exc:  # noqa: BLE001 - any VTK/SimpleITK failure: say which node
        raise InputError(f"{what}: transform '{parent.GetName()}' could not be converted to a SimpleITK transform "
                         f"({exc}); harden or replace it") from None


def transforms_from_scene(cycle_node, reference_index: int,
                          reference_grid: sitk.Image) -> List[Optional[sitk.Transform]]:
    """Per time point: reference -> time point transform from the SPECT volumes' current transforms."""
    count = state.timepoint_count(cycle_node)
    reference_spect = state.timepoint_node(cycle_node, "spect", reference_index)
    reference_transform = _from_world(reference_spect, reference_grid, f"reference time point {reference_index}")
    if reference_transform is not None and not reference_transform.IsLinear():
        raise InputError(f"the reference time point's SPECT '{reference_spect.GetName()}' is under a non-linear "
                         "transform; the reference must stay rigid (move the other time points instead)")
    to_reference_world = None  # reference points -> world (None: the reference is not moved)
    if reference_transform is not None:
        matrix = sitk_transform_to_matrix(reference_transform)
        if not np.allclose(matrix, np.eye(4), atol=1e-9):
            to_reference_world = np.linalg.inv(matrix)
    transforms: List[Optional[sitk.Transform]] = []
    for index in range(count):
        spect = state.timepoint_node(cycle_node, "spect", index)
        ct = state.timepoint_node(cycle_node, "ct", index)
        what = f"time point {index} ('{spect.GetName()}')"
        if ct is not None and ct.GetTransformNodeID() != spect.GetTransformNodeID():
            raise InputError(f"{what}: its CT '{ct.GetName()}' and SPECT are under different transforms; put both "
                             "under the same transform node so the dosimetry uses what you see")
        if index == reference_index:
            transforms.append(None)
            continue
        # the field of a non-linear transform is sampled where the reference points land in the world
        world_grid = _padded(reference_grid)
        transform = _from_world(spect, world_grid, what)
        transforms.append(_after_reference(transform, to_reference_world))
    return transforms


def _after_reference(transform: Optional[sitk.Transform], to_reference_world) -> Optional[sitk.Transform]:
    """``transform`` (world -> time point) applied after reference -> world; one affine when both are linear."""
    if to_reference_world is None:
        return transform
    if transform is None:
        return matrix_to_sitk_affine(to_reference_world)
    if transform.IsLinear():
        return matrix_to_sitk_affine(sitk_transform_to_matrix(transform) @ to_reference_world)
    return sitk.CompositeTransform([transform, matrix_to_sitk_affine(to_reference_world)])


def cycle_inputs_from_scene(scene, cycle_node=None, segmentation_node=None) -> SceneCycleInputs:
    """The loaded time points, their current transforms, the reference and the segmentation, from the scene.

    ``segmentation_node``: the one given, else the one the cycle node references (set by the
    segmentation module or :func:`startnet.mrml.cycle_state.set_segmentation_node`); None when
    neither exists (the caller decides whether a segmentation is required).
    """
    node = state.require_cycle_node(scene, cycle_node)
    cycle = cycle_from_scene(node)
    reference = state.reference_index(node)
    if not 0 <= reference < len(cycle.timepoints):
        raise InputError(f"cycle node: reference time point {reference} outside 0..{len(cycle.timepoints) - 1}")
    transforms = transforms_from_scene(node, reference, cycle.timepoints[reference].spect_bqml)
    reference_ct_files = list(state.timepoint_metadata(node, reference).get("ct_files") or [])
    segmentation = segmentation_node if segmentation_node is not None else state.segmentation_node(node)
    return SceneCycleInputs(cycle, reference, transforms, reference_ct_files, segmentation, node,
                            state.timepoint_node(node, "ct", reference))
