"""The Camera Calibration module's logic on MRML: both calibration steps from DICOM, results shown in the scene.

The acquisition is a DICOM folder or a list of DICOM files (the module passes a series of
Slicer's DICOM database, ``slicer.dicomDatabase.filesForSeries``); the numbers come from the same
code as ``startnet calibrate`` (:mod:`startnet.calibration.steps`) and go into the same CAL.json.
The scene shows what was measured:

- sensitivity: the cylinder's SPECT in Bq/mL (counts divided by the measured sensitivity: a uniform
  source reads its true concentration) and a one-row table;
- recovery: the sphere phantom's SPECT, a table per sphere and the recovery-curve chart
  (:mod:`startnet.mrml.calibration_display`). The spheres' centres come from a markups fiducial
  node and their volumes from a table or SPHERES.json (:mod:`startnet.mrml.calibration_spheres`),
  or the whole description from a SPHERES.json file.

Running a step again replaces its nodes (same node IDs). Tested headless with slicer-core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import SimpleITK as sitk

from startnet.calibration.spheres import SpherePhantom
from startnet.errors import InputError
from startnet.mrml.calibration_display import show_recovery, show_sensitivity, show_spect
from startnet.mrml.run_nodes import RunNodes

DEFAULT_TIMEZONE = "Europe/Stockholm"
Source = Union[str, Sequence[str]]


@dataclass
class CalibrationOutcome:
    """One step's CAL.json (whole file after the step), its values, the scene nodes and a summary."""

    data: Dict[str, Any]
    values: Dict[str, Any]
    nodes: Dict[str, Any]
    summary: str
    warnings: List[str] = field(default_factory=list)


def _source(source: Source) -> Source:
    if isinstance(source, (list, tuple)):
        if not source:
            raise InputError("no DICOM files: choose a SPECT series of the DICOM database")
        return [str(f) for f in source]
    text = str(source or "")
    if text in ("", "."):
        raise InputError("choose the calibration acquisition (a DICOM series or folder)")
    return text


def _out(path) -> str:
    text = str(path or "")
    if text in ("", "."):
        raise InputError("choose the calibration file (CAL.json) to write")
    if not text.lower().endswith(".json"):
        raise InputError(f"calibration file {text}: expected a .json file name (e.g. CAL_<camera>.json)")
    return text


def _summary_warnings(warnings: Sequence[str]) -> str:
    return "".join(f"\nwarning: {w}" for w in warnings)


class CalibrationSceneLogic:
    """Camera calibration steps on ``scene`` (the module passes ``slicer.mrmlScene``)."""

    def __init__(self, scene, *, command: str = "Slicer Camera Calibration module"):
        self.scene = scene
        self.command = command

    def sensitivity(self, source: Source, activity_mbq: float, activity_datetime: str, out_path, *,
                    timezone: str = DEFAULT_TIMEZONE, activity_rel_sd: float = 0.02,
                    margin_mm: Optional[float] = None, dead_time_s: Optional[float] = None,
                    origin: Optional[str] = None) -> CalibrationOutcome:
        """``startnet calibrate sensitivity`` on ``source`` into ``out_path``; shows the SPECT and a table."""
        from startnet.calibration.camera import describe
        from startnet.calibration.spheres import parse_datetime
        from startnet.calibration.steps import calibrate_sensitivity
        from startnet.dicomio.timing import get_zone

        if not activity_mbq or not activity_mbq > 0:
            raise InputError(f"activity of the source must be > 0 MBq, got {activity_mbq}")
        when = parse_datetime(activity_datetime, "activity date-time", get_zone(timezone))
        step = calibrate_sensitivity(_source(source), float(activity_mbq), when, _out(out_path),
                                     activity_rel_sd=activity_rel_sd, margin_mm=margin_mm, dead_time_s=dead_time_s,
                                     timezone=timezone, command=self.command, origin=origin)
        acq, data = step.acquisition, step.data
        image = acq.image
        if acq.mode == "counts":  # read at 1 cps/MBq: divide by the sensitivity to show Bq/mL
            image = sitk.Cast(image / float(step.values["sensitivity_cps_per_mbq"]), sitk.sitkFloat32)
            summary = (f"Sensitivity {data['sensitivity_cps_per_mbq']:.4g} cps/MBq (relative SD "
                       f"{100 * data['sensitivity_rel_sd']:.2f} %)")
        else:
            summary = (f"Bq/mL SPECT: recovered/true activity {data['vendor_quantification_ratio']:.4f} (relative SD "
                       f"{100 * data['vendor_quantification_ratio_rel_sd']:.2f} %)")
        nodes = RunNodes(self.scene)
        shown = {"spect": show_spect(self.scene, image, "sensitivity", acq.series_uid, nodes=nodes),
                 "table": show_sensitivity(self.scene, data, step.values, nodes=nodes)}
        summary += f" for {describe(acq.camera)}, written to {out_path}" + _summary_warnings(step.warnings)
        return CalibrationOutcome(data, step.values, shown, summary, step.warnings)

    def recovery(self, source: Source, phantom: SpherePhantom, out_path, *, timezone: str = DEFAULT_TIMEZONE,
                 dead_time_s: Optional[float] = None, origin: Optional[str] = None,
                 spheres_origin: str = "") -> CalibrationOutcome:
        """``startnet calibrate recovery`` on ``source`` with ``phantom`` into ``out_path``; shows the SPECT, the
        per-sphere table and the recovery-curve chart."""
        from startnet.calibration.camera import describe
        from startnet.calibration.steps import calibrate_recovery

        step = calibrate_recovery(_source(source), phantom, _out(out_path), dead_time_s=dead_time_s,
                                  timezone=timezone, command=self.command, origin=origin,
                                  spheres_origin=spheres_origin or phantom.path)
        acq, values = step.acquisition, step.values
        nodes = RunNodes(self.scene)
        shown = {"spect": show_spect(self.scene, acq.image, "recovery", acq.series_uid, nodes=nodes)}
        shown.update(show_recovery(self.scene, values, nodes=nodes))
        summary = (f"PSF FWHM {values['psf_fwhm_mm']:.2f} mm (relative SD {100 * values['psf_fwhm_rel_sd']:.1f} %), "
                   f"{len(values['spheres'])} spheres, RC "
                   + ", ".join(f"{s['volume_ml']:.3g} mL {s['rc']:.2f}" for s in
                               sorted(values["spheres"], key=lambda s: s["volume_ml"]))
                   + f" for {describe(acq.camera)}, written to {out_path}" + _summary_warnings(step.warnings))
        return CalibrationOutcome(step.data, values, shown, summary, step.warnings)

    def recovery_from_markups(self, source: Source, markups_node, volumes: Union[Dict[str, Any], Any], out_path, *,
                              sphere_kbq_ml: float, background_kbq_ml: float, reference_datetime: str,
                              concentration_rel_sd: Optional[float] = None, timezone: str = DEFAULT_TIMEZONE,
                              dead_time_s: Optional[float] = None,
                              origin: Optional[str] = None) -> CalibrationOutcome:
        """Recovery with the sphere centres of ``markups_node`` and ``volumes`` (name -> mL, or a table node)."""
        from startnet.dicomio.timing import get_zone
        from startnet.mrml.calibration_spheres import phantom_from_markups, volumes_from_table

        if markups_node is None:
            raise InputError("choose the markups with the spheres' centres (one control point per sphere)")
        if volumes is None:
            raise InputError("give the spheres' volumes: a table (name, volume_ml) or a SPHERES.json file")
        volumes_ml = volumes if isinstance(volumes, dict) else volumes_from_table(volumes)
        phantom, _document = phantom_from_markups(
            markups_node, volumes_ml, sphere_kbq_ml=sphere_kbq_ml, background_kbq_ml=background_kbq_ml,
            reference_datetime=reference_datetime, zone=get_zone(timezone),
            concentration_rel_sd=concentration_rel_sd)
        return self.recovery(source, phantom, out_path, timezone=timezone, dead_time_s=dead_time_s, origin=origin,
                             spheres_origin=f"markups '{markups_node.GetName()}'")

    def spheres_from_file(self, path, *, timezone: str = DEFAULT_TIMEZONE, markups_node=None, table_node=None):
        """A SPHERES.json as markups (centres) and a volumes table for placing or checking the centres;
        returns (phantom, markups node, table node)."""
        from startnet.calibration.spheres import read_spheres
        from startnet.dicomio.timing import get_zone
        from startnet.mrml.calibration_spheres import show_spheres

        if str(path or "") in ("", "."):
            raise InputError("choose a SPHERES.json file")
        phantom = read_spheres(path, get_zone(timezone))
        markups, table = show_spheres(self.scene, phantom, markups_node=markups_node, table_node=table_node)
        return phantom, markups, table

    def show_acquisition(self, source: Source, cal_path=None, *, timezone: str = DEFAULT_TIMEZONE):
        """The acquisition's SPECT in the scene before a step (to place the spheres' centres on it): Bq/mL
        images as they are, counts with the CAL.json's sensitivity when it has one, else as cps/mL."""
        from startnet.calibration.acquisition import load_acquisition, units_of
        from startnet.calibration.steps import existing_calibration

        source = _source(source)
        cf = None
        if units_of(source) == "counts":
            existing = existing_calibration(cal_path) if str(cal_path or "") not in ("", ".") else None
            cf = (existing or {}).get("sensitivity_cps_per_mbq") or 1.0
        acq = load_acquisition(source, cf_cps_per_mbq=cf, timezone=timezone)
        return show_spect(self.scene, acq.image, "acquisition", acq.series_uid)
