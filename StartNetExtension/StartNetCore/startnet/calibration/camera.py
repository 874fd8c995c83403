"""The camera and reconstruction a SPECT comes from, as its DICOM header says.

Identity (what must match between a calibration and a patient scan): Manufacturer (0008,0070),
ManufacturerModelName (0008,1090), DeviceSerialNumber (0018,1000). Recorded beside it: the
collimator (CollimatorGridName / CollimatorType in the Detector Information Sequence, 0054,0022),
the energy windows (Energy Window Information Sequence, 0054,0012) and the reconstruction:
ReconstructionMethod (0054,1103) with iterations and subsets when its text states them (``4i8s``,
``4 iterations 8 subsets``, ``OSEM 8x4``-style texts are not guessed), ConvolutionKernel (the
post-filter), CorrectedImage (0028,0051), voxel size. Reconstruction settings that differ between a
calibration and a patient scan are reported (a warning, not a refusal: the calibration still
describes the camera, less exactly).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

IDENTITY_KEYS = ("manufacturer", "model", "serial")
_ITER_SUBSETS = (re.compile(r"(\d+)\s*i\s*(\d+)\s*s\b", re.IGNORECASE),
                 re.compile(r"(\d+)\s*it(?:eration)?s?\W+(\d+)\s*sub(?:set)?s?", re.IGNORECASE))
_RECON_COMPARED = ("method", "iterations", "subsets", "filter", "corrections", "voxel_size_mm")


def _text(ds, keyword: str) -> str:
    value = getattr(ds, keyword, None)
    return "" if value is None else str(value).strip()


def _values(ds, keyword: str) -> List[str]:
    value = getattr(ds, keyword, None)
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split("\\") if v.strip()]
    return [str(v).strip() for v in value]


def _iterations_subsets(method: str):
    for pattern in _ITER_SUBSETS:
        match = pattern.search(method)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None, None


def camera_identity(ds) -> Dict[str, Any]:
    """``camera`` block of CAL.json from a SPECT header (missing attributes are empty strings)."""
    detectors = getattr(ds, "DetectorInformationSequence", None) or []
    collimators = sorted({"/".join(p for p in (_text(d, "CollimatorGridName"), _text(d, "CollimatorType")) if p)
                          for d in detectors} - {""})
    windows = []
    for item in getattr(ds, "EnergyWindowInformationSequence", None) or []:
        ranges = getattr(item, "EnergyWindowRangeSequence", None) or []
        for r in ranges or [None]:
            low = getattr(r, "EnergyWindowLowerLimit", None) if r is not None else None
            high = getattr(r, "EnergyWindowUpperLimit", None) if r is not None else None
            windows.append({"name": _text(item, "EnergyWindowName"),
                            "lower_kev": None if low in (None, "") else round(float(low), 3),
                            "upper_kev": None if high in (None, "") else round(float(high), 3)})
    corrections = sorted(v.upper() for v in _values(ds, "CorrectedImage") if v.upper() != "DECY")
    method = _text(ds, "ReconstructionMethod")
    iterations, subsets = _iterations_subsets(method)
    spacing = [float(v) for v in (getattr(ds, "PixelSpacing", None) or [])]
    thickness = getattr(ds, "SpacingBetweenSlices", None) or getattr(ds, "SliceThickness", None)
    voxel = [round(v, 3) for v in spacing[::-1]] + ([round(float(thickness), 3)] if thickness not in (None, "") else [])
    return {
        "manufacturer": _text(ds, "Manufacturer"), "model": _text(ds, "ManufacturerModelName"),
        "serial": _text(ds, "DeviceSerialNumber"), "collimator": ", ".join(collimators),
        "energy_windows": windows,
        "reconstruction": {"method": method, "iterations": iterations, "subsets": subsets,
                           "filter": _text(ds, "ConvolutionKernel"),
                           "corrections": corrections,
                           "voxel_size_mm": voxel, "series_description": _text(ds, "SeriesDescription")},
    }


def describe(camera: Dict[str, Any]) -> str:
    """'Manufacturer Model (serial S)' for messages."""
    serial = camera.get("serial") or "?"
    return f"{camera.get('manufacturer') or '?'} {camera.get('model') or '?'} (serial {serial})"


def same_camera(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """Same manufacturer, model and serial number (case and surrounding blanks ignored)."""
    return all(str(a.get(k) or "").strip().lower() == str(b.get(k) or "").strip().lower() for k in IDENTITY_KEYS)


def reconstruction_differences(calibrated: Dict[str, Any], scanned: Dict[str, Any],
                               voxel_tolerance: float = 0.02) -> List[str]:
    """Human-readable differences of the reconstruction settings (empty when they agree)."""
    a = calibrated.get("reconstruction") or {}
    b = scanned.get("reconstruction") or {}
    out = []
    for key in _RECON_COMPARED:
        va, vb = a.get(key), b.get(key)
        if key == "voxel_size_mm":
            if va and vb and (len(va) != len(vb) or any(abs(x / y - 1.0) > voxel_tolerance for x, y in zip(va, vb))):
                out.append(f"voxel size {va} mm calibrated, {vb} mm scanned")
            continue
        if va in (None, "", []) and vb in (None, "", []):
            continue
        if va != vb:
            out.append(f"{key} {va!r} calibrated, {vb!r} scanned")
    if (calibrated.get("collimator") or "") != (scanned.get("collimator") or ""):
        out.append(f"collimator {calibrated.get('collimator')!r} calibrated, {scanned.get('collimator')!r} scanned")
    return out


def identity_of(camera: Optional[Dict[str, Any]]) -> Dict[str, str]:
    camera = camera or {}
    return {k: str(camera.get(k) or "") for k in IDENTITY_KEYS}
