"""A Slicer scene of one cycle's results: CT, registered SPECT time points, structures, dose, tables.

Used for ``scene.mrb`` by ``startnet run`` and by the Dosimetry module to show a run.
"""

from __future__ import annotations

from startnet.mrml.scene import new_scene
from startnet.mrml.segmentations import masks_to_segmentation
from startnet.mrml.tables import table_from_records
from startnet.mrml.volumes import set_volume_attributes, sitk_to_volume

RESULT_COLUMNS = ("structure", "volume_ml", "mass_g", "tia_mbq_h", "mean_gy", "d2_gy", "d98_gy", "bed_gy",
                  "eqd2_gy", "uncertainty_pct", "fit_model", "effective_half_life_h")


def add_cycle_nodes(scene, result) -> dict:
    """Add the result's volumes, segmentation and tables to ``scene``; returns the nodes by role."""
    registered, analysis = result.registered, result.analysis
    nodes = {}
    if registered.ct_hu is not None:
        nodes["ct"] = sitk_to_volume(scene, registered.ct_hu, "CT (reference)")
    for index, image in enumerate(registered.activity_bqml):
        hours = float(registered.times_h[index])
        node = sitk_to_volume(scene, image, f"SPECT {hours:.1f} h (Bq/mL, registered)")
        set_volume_attributes(node, {"startnet.hours_post_injection": hours, "startnet.units": "Bq/mL"})
        nodes[f"spect_{index}"] = node
    dose = sitk_to_volume(scene, analysis.dose_gy, "Absorbed dose (Gy)")
    set_volume_attributes(dose, {"startnet.units": "Gy", "DicomRtImport.DoseVolume": "1"})
    display = dose.GetDisplayNode()
    if display is not None:
        display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeFileColdToHotRainbow.txt")
    nodes["dose"] = dose
    nodes["tia"] = sitk_to_volume(scene, analysis.tia_mbq_h, "TIA (MBq.h per voxel)")
    nodes["bed"] = sitk_to_volume(scene, analysis.bed_gy, "BED kidney parameters (Gy)")
    nodes["segmentation"] = masks_to_segmentation(scene, result.structures.masks, registered.reference_grid,
                                                  "Structures", colours=result.structures.colours or None)
    rows = [{"structure": name, **{c: values.get(c) for c in RESULT_COLUMNS[1:]}}
            for name, values in result.results["structures"].items()]
    nodes["results_table"] = table_from_records(scene, rows, "Dose results", columns=list(RESULT_COLUMNS))
    tac_rows = []
    for name, activity in analysis.activity_mbq.items():
        for hours, value in zip(registered.times_h, activity):
            tac_rows.append({"structure": name, "hours_post_injection": float(hours), "activity_mbq": float(value)})
    nodes["tac_table"] = table_from_records(scene, tac_rows, "Time-activity data")
    return nodes


def build_cycle_scene(result):
    """A new scene holding the cycle's nodes (for scene.mrb)."""
    scene = new_scene()
    add_cycle_nodes(scene, result)
    return scene
