"""``CAL.json``: one camera's calibration, filled by ``calibrate sensitivity`` and ``calibrate recovery``.

Keys (contract): ``camera`` (manufacturer, model, serial, collimator, energy_windows, reconstruction),
``sensitivity_cps_per_mbq``, ``sensitivity_rel_sd``, ``psf_fwhm_mm``, ``psf_fwhm_rel_sd``,
``recovery`` (list of {volume_ml, rc, rc_sd}), ``created_utc``, ``source`` (per command: input series
UIDs, the command line, when). Added: ``format``, ``updated_utc``, ``vendor_quantification_ratio``
(+ ``_rel_sd``, Bq/mL scans), ``sensitivity`` / ``spheres`` / ``psf_fit`` (the details behind the
numbers). A second command writing into an existing file keeps what the other wrote, also when both
write at the same time (a lock serialises them, see :func:`merge_into`); a scan from another camera
(manufacturer, model, serial) is refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any, Dict, Optional

from startnet.calibration.camera import describe, same_camera
from startnet.errors import InputError, OutputError
from startnet.filelock import DEFAULT_TIMEOUT_S, exclusive_lock, write_text_atomic

FORMAT = "startnet camera calibration v1"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_calibration(path) -> Dict[str, Any]:
    """The validated contents of a CAL.json (InputError naming the file and key)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"calibration file {p}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"calibration file {p}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("camera"), dict):
        raise InputError(f"calibration file {p}: expected an object with a 'camera' object (startnet calibrate output)")
    for key in ("sensitivity_cps_per_mbq", "psf_fwhm_mm"):
        value = data.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise InputError(f"calibration file {p}: '{key}' must be a number > 0 or null, got {value!r}")
    for key in ("sensitivity_rel_sd", "psf_fwhm_rel_sd"):
        value = data.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise InputError(f"calibration file {p}: '{key}' must be a number >= 0 or null, got {value!r}")
    recovery = data.get("recovery") or []
    if not isinstance(recovery, list) or not all(
            isinstance(r, dict) and all(isinstance(r.get(k), (int, float)) for k in ("volume_ml", "rc", "rc_sd"))
            for r in recovery):
        raise InputError(f"calibration file {p}: 'recovery' must be a list of {{volume_ml, rc, rc_sd}} numbers")
    return data


def merge_into(path, camera: Dict[str, Any], values: Dict[str, Any], source_key: str,
               source: Dict[str, Any], *, lock_timeout_s: float = DEFAULT_TIMEOUT_S) -> Dict[str, Any]:
    """Write ``values`` of ``camera`` into the CAL.json at ``path`` (created, or filled if the same camera).

    The read-modify-write holds the file's exclusive lock (:mod:`startnet.filelock`), so
    two writers at once (two command lines, a Slicer panel and a command line) are serialised and
    neither loses the other's step; the file is replaced atomically, never seen half-written.
    """
    p = Path(path)
    try:
        with exclusive_lock(p, timeout_s=lock_timeout_s, what="calibration file"):
            data = _merged(p, camera, values, source_key, source)
            write_text_atomic(p, json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"calibration file {p}: cannot write ({exc})") from exc
    return data


def _merged(p: Path, camera: Dict[str, Any], values: Dict[str, Any], source_key: str,
            source: Dict[str, Any]) -> Dict[str, Any]:
    if p.exists():
        data = read_calibration(p)
        if not same_camera(data["camera"], camera):
            raise InputError(f"calibration file {p} describes {describe(data['camera'])}; this scan comes from "
                             f"{describe(camera)}: write another camera's calibration into its own file")
    else:
        data = {"format": FORMAT, "camera": camera, "sensitivity_cps_per_mbq": None, "sensitivity_rel_sd": None,
                "psf_fwhm_mm": None, "psf_fwhm_rel_sd": None, "recovery": [], "created_utc": _now(), "source": {}}
    data.update(values)
    data.setdefault("source", {})[source_key] = source
    data["updated_utc"] = _now()
    return data


def optional_number(data: Dict[str, Any], key: str) -> Optional[float]:
    value = data.get(key)
    return None if value is None else float(value)
