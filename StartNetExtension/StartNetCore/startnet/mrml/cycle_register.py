"""Registration in the scene: one transform node per time point, applied to its CT and SPECT.

Each time point's CT and SPECT are placed under its linear transform node "Reference to <h> h
(rigid)" (the identity for the reference), whose transform from parent is the rigid CT-to-CT
result (reference -> time point, :mod:`startnet.mrml.transforms`): stepping through the time
points shows them aligned on the reference, and a user may correct any of them in the
Transforms module. With the B-spline refinement each non-reference time point also gets a grid
transform node "Reference to <h> h (B-spline)" as the parent of its rigid node (the composite
is rigid(B-spline(x)), as :func:`startnet.registration.refine_bspline` composes it). A re-run
refills the same nodes and the same quality table; the dosimetry reads the nodes' CURRENT
transforms (:mod:`startnet.mrml.cycle_inputs`).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

import SimpleITK as sitk

from startnet.errors import InputError
from startnet.mrml import cycle_hierarchy as hierarchy
from startnet.mrml import cycle_state as state
from startnet.mrml.tables import table_from_records
from startnet.mrml.transforms import displacement_grid_node, sitk_to_transform_node
from startnet.mrml.volumes import volume_to_sitk

QUALITY_COLUMNS = ("index", "hours_post_injection", "reference", "translation_mm", "rotation_deg",
                   "metric_before", "metric_after", "body_overlap_dice", "bspline_max_displacement_mm",
                   "activity_outside_fov_fraction", "warnings")
BSPLINE_GRID_SPACING_MM = 4.0  # the B-spline's working spacing (refine_bspline working_spacing_mm)


def _images(cycle_node, kind: str) -> List[sitk.Image]:
    images = []
    for index in range(state.timepoint_count(cycle_node)):
        node = state.timepoint_node(cycle_node, kind, index)
        if node is None:
            raise InputError(f"time point {index} has no {kind.upper()} volume in the scene; every time point needs "
                             "its CT for registration")
        images.append(volume_to_sitk(node, harden_parent_transform=False))  # scanner coordinates
    return images


def _grid_like(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    size = [max(2, int(round(n * s / spacing_mm))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    grid.SetSpacing([n * s / m for n, s, m in zip(image.GetSize(), image.GetSpacing(), size)])
    return grid


def _remove(scene, node) -> None:
    if node is None:
        return
    storage = node.GetStorageNode()
    if storage is not None:
        scene.RemoveNode(storage)
    scene.RemoveNode(node)


def _row(registration, hours: float) -> Dict:
    from startnet.cycle.run import registration_entry

    entry = registration_entry(registration)
    flags = (["B-spline refinement applied (grid transform node)"] if registration.deformable is not None else [])
    flags += ["IMPLAUSIBLE: check it"] if registration.implausible else []
    return {"index": entry["index"], "hours_post_injection": round(hours, 2), "reference": entry["reference"],
            "translation_mm": " ".join(f"{v:.2f}" for v in entry["translation_mm"]),
            "rotation_deg": " ".join(f"{v:.2f}" for v in entry["rotation_deg"]),
            "metric_before": entry.get("metric_before"), "metric_after": entry.get("metric_after"),
            "body_overlap_dice": entry.get("body_overlap_dice"),
            "bspline_max_displacement_mm": entry.get("bspline_max_displacement_mm"),
            "activity_outside_fov_fraction": entry["activity_outside_fov_fraction"],
            "warnings": "; ".join(list(entry["warnings"]) + flags)}


def register_in_scene(scene, cycle_node=None, reference_index: Optional[int] = None, *, deformable: bool = False,
                      progress: Optional[Callable[[float, str], None]] = None):
    """Register every time point onto the reference; returns the quality table node (refilled on re-runs)."""
    from startnet.mrml.cycle_load import hours_post_injection
    from startnet.registration import register_cycle

    node = state.require_cycle_node(scene, cycle_node)
    reference = state.reference_index(node) if reference_index is None else int(reference_index)
    state.set_reference_index(node, reference)  # checks the range
    hours = hours_post_injection(node)
    cts, spects = _images(node, "ct"), _images(node, "spect")

    def report(done: int, total: int) -> None:
        if progress:
            progress(done / total, f"registered {done}/{total}")

    results = register_cycle(cts, spects, reference, deformable=deformable, progress=report)
    cycle_item = hierarchy.cycle_item_of(scene, node)
    rows = []
    for registration in results:
        index = registration.index
        label = f"{hours[index]:.1f} h"
        rigid = registration.rigid.transform if registration.rigid is not None else sitk.Euler3DTransform()
        rigid_node = sitk_to_transform_node(scene, rigid, f"Reference to {label} (rigid)",
                                            node=state.timepoint_node(node, "transform", index))
        state.set_timepoint_node(node, "transform", index, rigid_node)
        bspline_node = state.timepoint_node(node, "bspline", index)
        if registration.deformable is not None:
            bspline = registration.deformable.transform.GetNthTransform(1)  # [rigid, B-spline]: B-spline first
            bspline_node = displacement_grid_node(scene, bspline, _grid_like(cts[reference], BSPLINE_GRID_SPACING_MM),
                                                  f"Reference to {label} (B-spline)", node=bspline_node)
            state.set_timepoint_node(node, "bspline", index, bspline_node)
            rigid_node.SetAndObserveTransformNodeID(bspline_node.GetID())
        else:
            rigid_node.SetAndObserveTransformNodeID(None)
            state.set_timepoint_node(node, "bspline", index, None)
            _remove(scene, bspline_node)
        for kind in ("ct", "spect"):
            state.timepoint_node(node, kind, index).SetAndObserveTransformNodeID(rigid_node.GetID())
        if cycle_item:
            folder = hierarchy.timepoint_folder(scene, cycle_item, index, f"{label} p.i.")
            hierarchy.place_nodes(scene, folder, [rigid_node, state.timepoint_node(node, "bspline", index)])
        rows.append(_row(registration, hours[index]))
    table = table_from_records(scene, rows, "Registration quality", node=state.quality_table_node(node),
                               columns=list(QUALITY_COLUMNS))
    state.set_quality_table_node(node, table)
    if cycle_item:
        hierarchy.place_nodes(scene, cycle_item, [table])
    return table
