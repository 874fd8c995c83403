"""A Slicer scene of one cycle's results: dose, TIA and BED maps, structures, tables (and inputs).

Used for ``scene.mrb`` by ``startnet run`` (:func:`build_cycle_scene`, with the CT and the
registered SPECTs) and by the Dosimetry module to show a run: in memory
(:func:`add_cycle_nodes` with ``include_inputs=False``: the scene already holds the time points)
or from a background job's output folder (:func:`show_run_outputs`). Every node carries a role
(:mod:`startnet.mrml.run_nodes`): showing another run refills the same nodes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import SimpleITK as sitk

from startnet.errors import InputError
from startnet.mrml.dose_display import show_dose
from startnet.mrml.run_nodes import RunNodes
from startnet.mrml.scene import new_scene
from startnet.mrml.segmentations import masks_to_segmentation
from startnet.mrml.tables import table_from_records
from startnet.mrml.volumes import set_volume_attributes, sitk_to_volume

RESULT_COLUMNS = ("structure", "volume_ml", "mass_g", "tia_mbq_h", "mean_gy", "d2_gy", "d98_gy", "bed_gy",
                  "eqd2_gy", "uncertainty_pct", "fit_model", "effective_half_life_h")
VOLUME = "vtkMRMLScalarVolumeNode"
MAPS = (("dose", "dose.nrrd", "Absorbed dose (Gy)"), ("tia", "tia.nrrd", "TIA (MBq.h per voxel)"),
        ("bed", "bed.nrrd", "BED kidney parameters (Gy)"))


def _maps(scene, nodes: RunNodes, images: Mapping[str, sitk.Image], reference_node=None) -> Dict[str, Any]:
    out = {}
    for role, _, name in MAPS:
        node = sitk_to_volume(scene, images[role], name, node=nodes.get(VOLUME, role, name))
        out[role] = node
    set_volume_attributes(out["dose"], {"startnet.units": "Gy"})
    set_volume_attributes(out["tia"], {"startnet.units": "MBq.h"})
    set_volume_attributes(out["bed"], {"startnet.units": "Gy"})
    show_dose(scene, out["dose"], reference_node=reference_node)
    for role in ("tia", "bed"):  # shown on request only; same colours, no wash over air
        show_dose_like = out[role].GetDisplayNode()
        show_dose_like.SetAndObserveColorNodeID(out["dose"].GetDisplayNode().GetColorNodeID())
    return out


def _tables(scene, nodes: RunNodes, results: Mapping[str, Any], times_h=None,
            activity_mbq: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    rows = [{"structure": name, **{c: values.get(c) for c in RESULT_COLUMNS[1:]}}
            for name, values in results["structures"].items()]
    out = {"results_table": table_from_records(scene, rows, "Dose results", columns=list(RESULT_COLUMNS),
                                               node=nodes.get("vtkMRMLTableNode", "results_table", "Dose results"))}
    tac_rows = []
    times_h = times_h if times_h is not None else [tp["hours_post_injection"] for tp in results["timepoints"]]
    for name, values in results["structures"].items():
        activity = (activity_mbq or {}).get(name, values.get("activity_mbq") or [])
        for hours, value in zip(times_h, activity):
            tac_rows.append({"structure": name, "hours_post_injection": float(hours), "activity_mbq": float(value)})
    out["tac_table"] = table_from_records(scene, tac_rows, "Time-activity data",
                                          node=nodes.get("vtkMRMLTableNode", "tac_table", "Time-activity data"))
    return out


def add_cycle_nodes(scene, result, *, include_inputs: bool = True, nodes: Optional[RunNodes] = None,
                    reference_node=None) -> dict:
    """Add (or refill) the result's volumes, segmentation and tables in ``scene``; returns the nodes by role.

    ``include_inputs``: also the reference CT, the registered SPECTs and the structures on the
    SPECT grid (for a scene of its own; the Dosimetry module's scene holds its inputs already).
    """
    registered, analysis = result.registered, result.analysis
    nodes = nodes or RunNodes(scene)
    out: Dict[str, Any] = {}
    if include_inputs:
        if registered.ct_hu is not None:
            out["ct"] = sitk_to_volume(scene, registered.ct_hu, "CT (reference)",
                                       node=nodes.get(VOLUME, "ct", "CT (reference)"))
            reference_node = reference_node or out["ct"]
        for index, image in enumerate(registered.activity_bqml):
            hours = float(registered.times_h[index])
            name = f"SPECT {hours:.1f} h (Bq/mL, registered)"
            node = sitk_to_volume(scene, image, name, node=nodes.get(VOLUME, f"spect_{index}", name))
            set_volume_attributes(node, {"startnet.hours_post_injection": hours, "startnet.units": "Bq/mL"})
            out[f"spect_{index}"] = node
    out.update(_maps(scene, nodes, {"dose": analysis.dose_gy, "tia": analysis.tia_mbq_h, "bed": analysis.bed_gy},
                     reference_node))
    if include_inputs:
        segmentation = nodes.get("vtkMRMLSegmentationNode", "segmentation", "Structures")
        segmentation.GetSegmentation().RemoveAllSegments()
        out["segmentation"] = masks_to_segmentation(scene, result.structures.masks, registered.reference_grid,
                                                    "Structures", colours=result.structures.colours or None,
                                                    node=segmentation)
    out.update(_tables(scene, nodes, result.results, registered.times_h, analysis.activity_mbq))
    return out


def read_run_outputs(out_dir) -> Dict[str, Any]:
    """results.json and the dose/TIA/BED maps of a run's output folder."""
    folder = Path(out_dir)
    path = folder / "results.json"
    if not path.is_file():
        raise InputError(f"{path}: not found; expected the output folder of a dosimetry run")
    try:
        results = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None
    images = {}
    for role, file_name, _ in MAPS:
        image_path = folder / file_name
        if not image_path.is_file():
            raise InputError(f"{image_path}: not found; the run's output folder is incomplete")
        images[role] = sitk.ReadImage(str(image_path))
    return {"results": results, "images": images}


def show_run_outputs(scene, out_dir, charts: Optional[Mapping[str, Any]] = None, *, reference_node=None,
                     colours: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """A finished run's output folder in ``scene`` (dose shown, tables, TAC/DVH charts from ``charts``);
    a re-run refills the same nodes and removes those of structures no longer there."""
    from startnet.mrml.result_charts import CHART_ROLES, show_result_charts

    loaded = read_run_outputs(out_dir)
    nodes = RunNodes(scene)
    out = _maps(scene, nodes, loaded["images"], reference_node)
    out.update(_tables(scene, nodes, loaded["results"]))
    if charts is not None:
        out.update(show_result_charts(scene, charts, nodes, colours))
    nodes.remove_unused(CHART_ROLES)
    out["results"] = loaded["results"]
    return out


def build_cycle_scene(result):
    """A new scene holding the cycle's nodes (for scene.mrb)."""
    scene = new_scene()
    add_cycle_nodes(scene, result)
    return scene
