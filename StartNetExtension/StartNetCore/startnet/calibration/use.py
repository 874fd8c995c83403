"""What a camera's CAL.json supplies to ``startnet run --calibration CAL.json|DIR``.

The SPECT's camera (Manufacturer, ManufacturerModelName, DeviceSerialNumber of its header) chooses
the file: ``--calibration DIR`` takes the one file in DIR (``*.json``, not recursive) describing that
camera; a single file describing another camera is refused naming both. Reconstruction settings
that differ from the calibrated ones (method, iterations, subsets, filter, corrections, voxel size,
collimator) give a warning.

Supplied: the counts -> activity factor (``sensitivity_cps_per_mbq``, used for count images unless
``--calibration-cps-per-mbq`` is given) with its relative SD for the GUM budget; the PSF FWHM for the
partial-volume correction (unless ``--psf-fwhm-mm``) with its relative SD; the recovery curve (RC
per sphere volume with its SD) for ``--pvc rc``. The curve beyond the largest sphere follows the
closed form of a Gaussian PSF of the calibrated FWHM scaled to the largest sphere's measured RC
(a kidney is larger than any NEMA sphere); below the smallest it is clamped.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from startnet.calibration.calfile import read_calibration
from startnet.calibration.camera import camera_identity, describe, identity_of, reconstruction_differences, same_camera
from startnet.errors import InputError
from startnet.segmentation.recovery import DEFAULT_VOLUMES_ML, RecoveryCurve, sphere_recovery_coefficient


@dataclass(frozen=True)
class CalibratedRecoveryCurve(RecoveryCurve):
    """A measured RC curve whose relative SD varies with volume (log-volume interpolation)."""

    rel_sds: Tuple[float, ...] = ()

    def rel_sd_params(self, volume_ml: float) -> float:
        if not self.rel_sds:
            return self.rel_sd
        return float(np.interp(math.log(volume_ml), np.log(self.volumes_ml), self.rel_sds))


@dataclass
class AppliedCalibration:
    path: str
    sha256: str
    camera: Dict[str, Any]
    sensitivity_cps_per_mbq: Optional[float]
    sensitivity_rel_sd: Optional[float]
    psf_fwhm_mm: Optional[float]
    psf_fwhm_rel_sd: Optional[float]
    recovery: Optional[RecoveryCurve]
    warnings: List[str] = field(default_factory=list)

    def provenance(self) -> Dict[str, Any]:
        return {"file": self.path, "sha256": self.sha256, "camera": identity_of(self.camera),
                "collimator": self.camera.get("collimator", ""), "reconstruction": self.camera.get("reconstruction"),
                "sensitivity_cps_per_mbq": self.sensitivity_cps_per_mbq, "sensitivity_rel_sd": self.sensitivity_rel_sd,
                "psf_fwhm_mm": self.psf_fwhm_mm, "psf_fwhm_rel_sd": self.psf_fwhm_rel_sd,
                "recovery_curve": self.recovery.to_dict() if self.recovery is not None else None}


def recovery_curve(data: Dict[str, Any], name: str) -> Optional[RecoveryCurve]:
    """The measured curve extended beyond the largest sphere (module doc); None with < 2 spheres."""
    points = sorted(data.get("recovery") or [], key=lambda r: r["volume_ml"])
    if len(points) < 2:
        return None
    volumes = [float(p["volume_ml"]) for p in points]
    rcs = [float(p["rc"]) for p in points]
    rel = [float(p["rc_sd"]) / float(p["rc"]) if p["rc"] > 0 else 1.0 for p in points]
    psf = data.get("psf_fwhm_mm")
    if psf:
        scale = rcs[-1] / sphere_recovery_coefficient(volumes[-1], float(psf))
        for v in DEFAULT_VOLUMES_ML:
            if v > volumes[-1] * 1.5:
                volumes.append(float(v))
                rcs.append(min(1.2, sphere_recovery_coefficient(v, float(psf)) * scale))
                rel.append(rel[-1])
    if any(not rc > 0 for rc in rcs):
        raise InputError(f"calibration file {name}: recovery coefficients must be > 0 (got {rcs}); re-measure")
    return CalibratedRecoveryCurve(
        camera=describe(data["camera"]), volumes_ml=tuple(volumes), recovery_coefficients=tuple(rcs),
        description=f"measured on a sphere phantom ({name}), beyond {points[-1]['volume_ml']:.3g} mL the Gaussian "
                    f"PSF curve of {psf} mm scaled to the largest sphere",
        rel_sd=float(np.sqrt(np.mean(np.square(rel)))), rel_sds=tuple(rel))


def _candidates(path: Path) -> List[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise InputError(f"--calibration {path}: the folder holds no *.json calibration files")
        return files
    if not path.exists():
        raise InputError(f"--calibration {path}: no such file or folder")
    return [path]


def select_calibration(calibration_path: str, spect_camera: Dict[str, Any]) -> AppliedCalibration:
    """The calibration of the SPECT's camera (module doc); InputError when none matches."""
    path = Path(calibration_path)
    matches, others = [], []
    for candidate in _candidates(path):
        try:
            data = read_calibration(candidate)
        except InputError:
            if path.is_dir():
                continue  # other JSON files in the folder are not calibrations
            raise
        (matches if same_camera(data["camera"], spect_camera) else others).append((candidate, data))
    if not matches:
        seen = "; ".join(f"{describe(d['camera'])} in {p}" for p, d in others) or "no calibration files"
        raise InputError(f"--calibration {path}: no calibration for the SPECT's camera {describe(spect_camera)} "
                         f"(found {seen}); calibrate this camera or give its file")
    warnings = []
    if len(matches) > 1:
        matches.sort(key=lambda m: str(m[1].get("updated_utc") or m[1].get("created_utc") or ""))
        warnings.append(f"--calibration {path}: {len(matches)} files describe {describe(spect_camera)}; used the "
                        f"newest, {matches[-1][0]}")
    chosen, data = matches[-1]
    differences = reconstruction_differences(data["camera"], spect_camera)
    if differences:
        warnings.append(f"the SPECT's reconstruction differs from the calibrated one ({chosen}): "
                        + "; ".join(differences) + "; sensitivity, PSF and recovery may not apply exactly")
    sha = hashlib.sha256(chosen.read_bytes()).hexdigest()
    return AppliedCalibration(str(chosen.resolve()), sha, data["camera"], data.get("sensitivity_cps_per_mbq"),
                              data.get("sensitivity_rel_sd"), data.get("psf_fwhm_mm"), data.get("psf_fwhm_rel_sd"),
                              recovery_curve(data, str(chosen)), warnings)


def spect_camera(discovery) -> Dict[str, Any]:
    """Camera of the cycle's SPECT series (InputError if they come from different cameras)."""
    cameras = [(s, camera_identity(s.headers[0])) for s in discovery.spect_series if s.headers]
    if not cameras:
        raise InputError(f"{discovery.input_dir}: no SPECT reconstruction found to match a calibration to")
    first = cameras[0][1]
    for series, camera in cameras[1:]:
        if not same_camera(first, camera):
            raise InputError(f"{discovery.input_dir}: SPECT series {series.series_uid} comes from {describe(camera)}, "
                             f"others from {describe(first)}; one calibration cannot serve both")
    return first


def _same_cameras(cameras, where: str) -> Dict[str, Any]:
    first_where, first = cameras[0]
    for other_where, camera in cameras[1:]:
        if not same_camera(first, camera):
            raise InputError(f"{where}: {other_where} comes from {describe(camera)}, {first_where} from "
                             f"{describe(first)}; one calibration cannot serve both")
    return first


def loaded_cycle_camera(cycle) -> Dict[str, Any]:
    """Camera of a cycle already loaded (the Slicer scene, a job): its time points' SPECT DICOM headers.

    InputError when a time point does not name its SPECT file (``spect_file``) or the file cannot be
    read: the calibration is chosen by the camera the header states, never guessed.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    cameras = []
    for index, tp in enumerate(cycle.timepoints):
        path = str(getattr(tp, "spect_file", "") or "")
        where = f"time point {index} ({tp.hours_post_injection:.1f} h)"
        if not path:
            raise InputError(f"{where}: its SPECT DICOM file is not recorded (spect_file); the calibration is chosen "
                             "by the camera in that file's header: load the cycle from DICOM")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, InvalidDicomError) as exc:
            raise InputError(f"{where}: SPECT DICOM file {path} cannot be read ({exc}); the calibration is chosen "
                             "by the camera in its header") from None
        cameras.append((f"the SPECT of {where} ({path})", camera_identity(ds)))
    if not cameras:
        raise InputError("the cycle has no time points to match a calibration to")
    return _same_cameras(cameras, "cycle")


def apply_to_loaded_cycle(options, cycle) -> AppliedCalibration:
    """``options.calibration_path`` applied to a cycle loaded earlier (Slicer's Dosimetry module, its job).

    Chooses the file of the time points' camera (as ``startnet run --calibration``) and sets
    ``options.applied_calibration``. Count images were converted to Bq/mL when they were loaded, with
    the CF given then (recorded in ``conversion``); with a calibrated sensitivity they are rescaled to
    it (CF at load / calibrated CF) and ``conversion`` records both, as a run would have converted
    them with the calibration's CF. Bq/mL images (vendor quantification) are left as they are. The
    selection's warnings (reconstruction differs, several files) and a note per rescaled time point
    are added to ``cycle.warnings``.
    """
    import SimpleITK as sitk

    applied = select_calibration(options.calibration_path, loaded_cycle_camera(cycle))
    options.applied_calibration = applied
    notes = list(applied.warnings)
    calibrated = applied.sensitivity_cps_per_mbq
    if calibrated and options.calibration_cps_per_mbq is None:
        for index, tp in enumerate(cycle.timepoints):
            conversion = dict(tp.conversion or {})
            loaded = conversion.get("calibration_cps_per_mbq")
            if conversion.get("mode") != "counts" or not loaded:
                continue
            factor = float(loaded) / float(calibrated)
            if abs(factor - 1.0) > 1e-9:
                tp.spect_bqml = sitk.Cast(tp.spect_bqml * factor, tp.spect_bqml.GetPixelID())
                notes.append(f"time point {index} ({tp.hours_post_injection:.1f} h): counts were converted at load "
                             f"with {float(loaded):g} cps/MBq; rescaled to the calibrated sensitivity "
                             f"{float(calibrated):.4g} cps/MBq of {applied.path}")
            conversion.update(calibration_cps_per_mbq=float(calibrated), calibration_cps_per_mbq_at_load=float(loaded),
                              calibration_file=applied.path)
            tp.conversion = conversion
    cycle.warnings = notes + list(cycle.warnings or [])
    return applied


def apply_to_run(options, overrides):
    """Load step of ``startnet run --calibration``: choose the camera's file, supply its CF, load the cycle.

    Sets ``options.applied_calibration``; returns (cycle, discovery) as ``startnet.cycle.load.load_timepoints``.
    """
    from startnet.dicomio import discover, load_cycle

    source = options.input_dir
    discovery = discover(list(source) if isinstance(source, (list, tuple)) else source)
    applied = select_calibration(options.calibration_path, spect_camera(discovery))
    options.applied_calibration = applied
    if overrides.calibration_cps_per_mbq is None and applied.sensitivity_cps_per_mbq:
        overrides.calibration_cps_per_mbq = float(applied.sensitivity_cps_per_mbq)
    cycle = load_cycle(discovery.input_dir, overrides=overrides, discovery=discovery)
    cycle.warnings = list(applied.warnings) + list(cycle.warnings)
    return cycle, discovery


def analysis_inputs(options, cycle) -> Dict[str, Any]:
    """Keyword arguments of ``analyse_structures`` from the applied calibration (only what it measured).

    The CF's relative SD replaces the default only when the calibration's sensitivity converted count
    images; the PSF's only when its FWHM is the one used (no ``--psf-fwhm-mm``).
    """
    applied = options.applied_calibration
    out: Dict[str, Any] = {}
    if applied.recovery is not None:
        out["recovery_curve"] = applied.recovery
    modes = {str((tp.conversion or {}).get("mode")) for tp in getattr(cycle, "timepoints", [])}
    if (options.calibration_cps_per_mbq is None and applied.sensitivity_rel_sd is not None
            and applied.sensitivity_cps_per_mbq and modes == {"counts"}):
        out["cf_rel_sd"] = float(applied.sensitivity_rel_sd)
    if options.psf_fwhm_mm is None and applied.psf_fwhm_mm and applied.psf_fwhm_rel_sd is not None:
        out["psf_fwhm_rel_sd"] = float(applied.psf_fwhm_rel_sd)
    return out
