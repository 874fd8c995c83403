"""A calibration's results in the scene: the phantom's SPECT, a table per step and the recovery-curve chart.

Nodes carry a role (:mod:`startnet.mrml.run_nodes`, prefix ``calibration:``) so that running a
step again refills them instead of adding new ones. The chart (x: sphere volume in mL, log scale,
``vtkMRMLPlotChartNode::SetXAxisLogScale``, v5.8.1 and v5.10.0) holds

- the measured recovery coefficients (circles, no line) and the count-conserving ones (squares);
- the recovery curve of a Gaussian PSF of the fitted FWHM (line), i.e. what the partial-volume
  correction uses with this calibration (:func:`startnet.segmentation.recovery.sphere_recovery_coefficient`);
- for comparison the curve of the default, uncalibrated PSF (dashed);

each series with its own colour (a series node is black by default, vtkMRMLPlotSeriesNode.cxx).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import SimpleITK as sitk

from startnet.mrml.plots import PALETTE, add_chart, add_series
from startnet.mrml.run_nodes import RunNodes
from startnet.mrml.tables import table_from_records
from startnet.mrml.volumes import set_volume_attributes, sitk_to_volume

ROLE_PREFIX = "calibration:"
CHART, RESULTS_TABLE = ROLE_PREFIX + "recovery_chart", ROLE_PREFIX + "recovery_table"
SENSITIVITY_TABLE = ROLE_PREFIX + "sensitivity_table"
CURVE_VOLUMES_ML = tuple(float(v) for v in np.geomspace(0.3, 300.0, 40))
SERIES = (  # role, name, x column, y column, table role, marker, line
    ("rc", "RC measured", "volume_ml", "rc", RESULTS_TABLE, "circle", False),
    ("rc_cc", "RC count-conserving", "volume_ml", "rc_count_conserving", RESULTS_TABLE, "square", False),
    ("fit", "Gaussian PSF fit", "volume_ml", "rc", ROLE_PREFIX + "curve_fit", "none", True),
    ("default", "default PSF (uncalibrated)", "volume_ml", "rc", ROLE_PREFIX + "curve_default", "none", True),
)
COLOURS = {"rc": PALETTE[0], "rc_cc": PALETTE[1], "fit": PALETTE[2], "default": PALETTE[7]}
PET_HEAT_COLOR_NODE_ID = "vtkMRMLPETProceduralColorNodePET-Heat"  # as startnet.mrml.cycle_load


def show_spect(scene, image: sitk.Image, step: str, series_uid: str, *, nodes: Optional[RunNodes] = None):
    """The calibration acquisition (Bq/mL) as a volume node with the PET heat colours; refilled on a re-run."""
    nodes = nodes or RunNodes(scene)
    node = nodes.get("vtkMRMLScalarVolumeNode", f"{ROLE_PREFIX}{step}_spect", f"Calibration {step} SPECT (Bq/mL)")
    sitk_to_volume(scene, image, node.GetName(), node=node)
    set_volume_attributes(node, {"startnet.units": "Bq/mL", "DICOM.SeriesInstanceUID": series_uid})
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(PET_HEAT_COLOR_NODE_ID)
    values = sitk.GetArrayViewFromImage(image)
    positive = values[values > 0]
    display.SetAutoWindowLevel(0)
    display.SetWindowLevelMinMax(0.0, max(float(np.percentile(positive, 99.5)) if positive.size else 1.0, 1e-6))
    return node


def sphere_records(values: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One row per sphere (by volume) of a recovery step's values."""
    rows = []
    for sphere in sorted(values["spheres"], key=lambda s: s["volume_ml"]):
        x, y, z = sphere["centre_mm"]
        rows.append({"name": sphere["name"], "volume_ml": sphere["volume_ml"], "rc": sphere["rc"],
                     "rc_sd": sphere["rc_sd"], "rc_mean": sphere["rc_mean"],
                     "rc_count_conserving": sphere["rc_count_conserving"],
                     "rc_count_conserving_sd": sphere["rc_count_conserving_sd"],
                     "background_bqml": sphere["background_bqml"], "centre_lps_mm": f"{x:.1f}, {y:.1f}, {z:.1f}"})
    return rows


def curve_records(fwhm_mm: float) -> List[Dict[str, float]]:
    from startnet.segmentation.recovery import sphere_recovery_coefficient

    return [{"volume_ml": v, "rc": float(sphere_recovery_coefficient(v, fwhm_mm))} for v in CURVE_VOLUMES_ML]


def show_recovery(scene, values: Mapping[str, Any], *, nodes: Optional[RunNodes] = None) -> Dict[str, Any]:
    """Results table and recovery chart of a recovery step; returns {"table", "chart", "series": {role: node}}."""
    from startnet.segmentation.recovery import DEFAULT_PSF_FWHM_MM

    nodes = nodes or RunNodes(scene)
    fwhm = float(values["psf_fwhm_mm"])
    tables = {
        RESULTS_TABLE: table_from_records(scene, sphere_records(values), "Calibration recovery per sphere",
                                          node=nodes.get("vtkMRMLTableNode", RESULTS_TABLE,
                                                         "Calibration recovery per sphere")),
        ROLE_PREFIX + "curve_fit": table_from_records(
            scene, curve_records(fwhm), f"Recovery curve, PSF {fwhm:.1f} mm",
            node=nodes.get("vtkMRMLTableNode", ROLE_PREFIX + "curve_fit", f"Recovery curve, PSF {fwhm:.1f} mm")),
        ROLE_PREFIX + "curve_default": table_from_records(
            scene, curve_records(DEFAULT_PSF_FWHM_MM), f"Recovery curve, default PSF {DEFAULT_PSF_FWHM_MM:g} mm",
            node=nodes.get("vtkMRMLTableNode", ROLE_PREFIX + "curve_default",
                           f"Recovery curve, default PSF {DEFAULT_PSF_FWHM_MM:g} mm")),
    }
    chart = add_chart(scene, "Recovery curve", f"Recovery coefficients (fitted PSF FWHM {fwhm:.1f} mm)",
                      "sphere volume (mL)", "recovery coefficient",
                      node=nodes.get("vtkMRMLPlotChartNode", CHART, "Recovery curve"))
    chart.SetXAxisLogScale(True)
    series = {}
    for role, name, x, y, table_role, marker, line in SERIES:
        title = f"{name} {fwhm:.1f} mm" if role == "fit" else name
        if role == "default":
            title = f"{name} {DEFAULT_PSF_FWHM_MM:g} mm"
        node = add_series(scene, chart, tables[table_role], x, y, title, line=line, marker=marker,
                          colour=COLOURS[role], node=nodes.get("vtkMRMLPlotSeriesNode", f"{ROLE_PREFIX}series_{role}",
                                                               title))
        if role == "default":
            node.SetLineStyle(node.LineStyleDash)
        series[role] = node
    return {"table": tables[RESULTS_TABLE], "chart": chart, "series": series}


def show_sensitivity(scene, data: Mapping[str, Any], values: Mapping[str, Any], *,
                     nodes: Optional[RunNodes] = None):
    """A one-row table of a sensitivity step (the value written to CAL.json and what it rests on)."""
    nodes = nodes or RunNodes(scene)
    details = values.get("sensitivity") or {}
    row = {"sensitivity_cps_per_mbq": data.get("sensitivity_cps_per_mbq"),
           "sensitivity_rel_sd": data.get("sensitivity_rel_sd"),
           "vendor_quantification_ratio": values.get("vendor_quantification_ratio"),
           "activity_at_acquisition_start_mbq": details.get("activity_at_acquisition_start_mbq"),
           "count_rate_cps": details.get("count_rate_cps"), "voi_margin_mm": details.get("voi_margin_mm"),
           "counts_outside_voi_fraction": details.get("counts_outside_voi_fraction"), "mode": details.get("mode")}
    return table_from_records(scene, [row], "Calibration sensitivity",
                              node=nodes.get("vtkMRMLTableNode", SENSITIVITY_TABLE, "Calibration sensitivity"))
