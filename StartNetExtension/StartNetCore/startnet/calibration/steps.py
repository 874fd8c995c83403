"""The two calibration steps as ``startnet calibrate`` and the Slicer Camera Calibration panel run them.

``calibrate_sensitivity`` and ``calibrate_recovery`` read one SPECT acquisition (a DICOM folder or
a list of DICOM files, e.g. a series of Slicer's DICOM database), measure, and write the values
into the CAL.json at ``out`` (:func:`startnet.calibration.calfile.merge_into`: created, or filled
when it describes the same camera). Both callers get the same numbers from the same code; they
differ only in how they describe where the acquisition came from (``origin``) and the command.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from startnet.calibration.acquisition import Acquisition
from startnet.calibration.spheres import SpherePhantom
from startnet.errors import InputError

Source = Union[str, Sequence[str]]  # a folder or DICOM files


@dataclass
class StepResult:
    """What one step wrote (``data``: the whole CAL.json after it) and measured (``values``)."""

    data: Dict[str, Any]
    values: Dict[str, Any]
    acquisition: Acquisition
    warnings: List[str] = field(default_factory=list)


def existing_calibration(path) -> Optional[Dict[str, Any]]:
    from startnet.calibration.calfile import read_calibration

    return read_calibration(path) if Path(path).exists() else None


def _source_record(acq: Acquisition, command: str, extra: Dict[str, Any], origin: Optional[str]) -> Dict[str, Any]:
    out = {"dicom_dir": acq.input_dir, "series_instance_uids": [acq.series_uid], "spect_file": acq.spect_file,
           "command": command, "run_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if origin:
        out["origin"] = origin
    out.update(extra)
    return out


def calibrate_sensitivity(source: Source, activity_mbq: float, activity_utc: _dt.datetime, out, *,
                          activity_rel_sd: float = 0.02, margin_mm: Optional[float] = None,
                          dead_time_s: Optional[float] = None, timezone: str = "Europe/Stockholm",
                          command: str = "", origin: Optional[str] = None) -> StepResult:
    """Sensitivity (cps/MBq) or, for a Bq/mL SPECT, the vendor's recovered/true ratio, into ``out``."""
    from startnet.calibration.acquisition import load_acquisition
    from startnet.calibration.calfile import merge_into
    from startnet.calibration.sensitivity import measure_sensitivity

    if not 0 <= activity_rel_sd < 1:
        raise InputError(f"--activity-rel-sd must be in [0, 1), got {activity_rel_sd}")
    existing = existing_calibration(out)
    acq = load_acquisition(source, reference_utc=activity_utc, cf_cps_per_mbq=1.0, dead_time_s=dead_time_s,
                           timezone=timezone)
    result = measure_sensitivity(acq, activity_mbq, activity_utc, margin_mm=margin_mm,
                                 psf_fwhm_mm=(existing or {}).get("psf_fwhm_mm"), activity_rel_sd=activity_rel_sd)
    data = merge_into(out, acq.camera, result["values"], "sensitivity", _source_record(acq, command, {}, origin))
    return StepResult(data, result["values"], acq, list(result["warnings"]))


def calibrate_recovery(source: Source, phantom: SpherePhantom, out, *, dead_time_s: Optional[float] = None,
                       timezone: str = "Europe/Stockholm", command: str = "", origin: Optional[str] = None,
                       spheres_origin: str = "") -> StepResult:
    """Recovery coefficients per sphere and the PSF FWHM, into ``out`` (counts need its sensitivity first)."""
    from startnet.calibration.acquisition import load_acquisition, units_of
    from startnet.calibration.calfile import merge_into
    from startnet.calibration.camera import describe, same_camera
    from startnet.calibration.recovery import measure_recovery

    existing = existing_calibration(out)
    cf = None
    if units_of(source) == "counts":
        cf = (existing or {}).get("sensitivity_cps_per_mbq")
        if cf is None:
            raise InputError(f"{_where(source)}: the sphere SPECT holds counts and {out} has no sensitivity: run "
                             f"'startnet calibrate sensitivity ... --out {out}' first (counts need a calibration)")
    acq = load_acquisition(source, reference_utc=phantom.reference_datetime, cf_cps_per_mbq=cf,
                           dead_time_s=dead_time_s, timezone=timezone)
    if existing is not None and not same_camera(existing["camera"], acq.camera):
        raise InputError(f"calibration file {out} describes {describe(existing['camera'])}; this scan comes from "
                         f"{describe(acq.camera)}: write another camera's calibration into its own file")
    result = measure_recovery(acq, phantom)
    data = merge_into(out, acq.camera, result["values"], "recovery",
                      _source_record(acq, command, {"spheres_file": spheres_origin or phantom.path,
                                                    "calibration_cps_per_mbq_used": cf}, origin))
    return StepResult(data, result["values"], acq, list(result["warnings"]))


def _where(source: Source) -> str:
    if isinstance(source, (list, tuple)):
        return f"{len(source)} DICOM files"
    return str(source)
