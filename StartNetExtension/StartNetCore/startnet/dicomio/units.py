"""SPECT stored values -> activity concentration (Bq/mL) AT the acquisition start.

Modes (REFERENCE.md sections 3-5), chosen per series and recorded in ``conversion``:
- ``bqml`` from the Real World Value Mapping Sequence (0040,9096) with measurement units
  Bq/ml (kBq/ml, MBq/ml scaled), applied to stored values; or Units (0054,1001) = BQML with
  RescaleSlope/Intercept (per frame when the file has per-frame values). DecayCorrection
  (0054,1102) then says what the values mean: START = activity at acquisition start (used as
  is); ADMIN = decay-corrected to the administration (multiplied by exp(-lambda (t_acq - t_inj)));
  NONE = mean over the acquisition (multiplied by lambda T / (1 - exp(-lambda T)) to get the
  start value). DecayCorrectionDateTime (0018,9701), when present, is the reference time.
  Missing DecayCorrection is taken as START with a warning.
- ``counts`` (Units CNTS or absent): A(t_start) = N * lambda / (CF * (1 - exp(-lambda T))) per
  voxel, divided by the voxel volume, with CF the camera calibration factor in cps/MBq
  (``Overrides.calibration_cps_per_mbq``, mandatory) and T the acquisition duration:
  ``Overrides.acquisition_duration_s``; else ActualFrameDuration (0018,1242) x
  NumberOfFramesInRotation (0054,0053) from the Rotation Information Sequence (0054,0052) (time
  per view x views); else the top-level ActualFrameDuration (0018,1242) taken as the whole
  acquisition. Optional paralysable dead time tau (``Overrides.dead_time_s``): each detector
  head's observed total-spectrum rate R_obs (from ``--count-rate-kcps``, the projections or their
  header, see :mod:`startnet.dicomio.countrate`; never the reconstructed photopeak sum) is
  corrected to R = -W0(-R_obs tau) / tau (Lambert W) and all counts are scaled by the heads'
  count-weighted mean R / R_obs. ``dead_time_correction`` states what was done.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from startnet.dicomio.countrate import HeadRates, image_factor
from startnet.dicomio.model import Overrides
from startnet.dicomio.timing import TimeContext, parse_dt
from startnet.errors import DicomInputError, InputError

RWVM = "Real World Value Mapping Sequence (0040,9096)"
_BQML_SCALE = {"bq/ml": 1.0, "kbq/ml": 1e3, "mbq/ml": 1e6, "bq/cm3": 1.0}


def _item_slope(item) -> Tuple[float, float]:
    return (float(getattr(item, "RescaleSlope", 1.0) or 1.0),
            float(getattr(item, "RescaleIntercept", 0.0) or 0.0))


def frame_rescale(ds, n_frames: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame RescaleSlope/Intercept (per-frame functional groups, else top level, else 1/0)."""
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if per_frame and len(per_frame) == n_frames:
        slopes, intercepts = np.ones(n_frames), np.zeros(n_frames)
        found = False
        for i, group in enumerate(per_frame):
            pvt = getattr(group, "PixelValueTransformationSequence", None)
            if pvt:
                slopes[i], intercepts[i] = _item_slope(pvt[0])
                found = True
        if found:
            return slopes, intercepts
    slope, intercept = _item_slope(ds)
    return np.full(n_frames, slope), np.full(n_frames, intercept)


def rwvm_bqml(ds, path: str) -> Optional[Tuple[float, float, str]]:
    """(slope, intercept, unit) to Bq/mL from a Real World Value Mapping item in Bq/ml, else None."""
    seq = getattr(ds, "RealWorldValueMappingSequence", None)
    if not seq:
        return None
    for item in seq:
        units = getattr(item, "MeasurementUnitsCodeSequence", None)
        code = str(getattr(units[0], "CodeValue", "") or "").strip() if units else ""
        scale = _BQML_SCALE.get(code.lower().replace(" ", ""))
        if scale is None:
            continue
        if "RealWorldValueSlope" not in item:
            raise DicomInputError(f"{path}: {RWVM} item in {code} has no RealWorldValueSlope (0040,9225) "
                                  "(lookup-table mappings are not supported)")
        slope = float(item.RealWorldValueSlope) * scale
        intercept = float(getattr(item, "RealWorldValueIntercept", 0.0) or 0.0) * scale
        return slope, intercept, code
    return None


def units_mode(ds, path: str) -> Tuple[str, str]:
    """('bqml' | 'counts', source) of a SPECT dataset."""
    if rwvm_bqml(ds, path) is not None:
        return "bqml", f"{RWVM} in Bq/ml"
    units = str(getattr(ds, "Units", "") or "").strip().upper()
    if units == "BQML":
        return "bqml", "Units (0054,1001) BQML with RescaleSlope/Intercept"
    if units in ("CNTS", ""):
        return "counts", "Units (0054,1001) " + (units or "absent") + ": counts"
    raise DicomInputError(f"{path}: Units (0054,1001) is {units!r}; expected BQML, CNTS or a {RWVM} "
                          "in Bq/ml for a quantitative SPECT")


def acquisition_duration_s(ds, path: str, overrides: Overrides,
                           warnings: Optional[List[str]] = None) -> Tuple[Optional[float], str]:
    """(T in s, source); a top-level value disagreeing by > 1 % with the rotation's is warned about."""
    if overrides.acquisition_duration_s is not None:
        return overrides.acquisition_duration_s, "override"
    top = getattr(ds, "ActualFrameDuration", None)
    top_s = float(top) / 1000.0 if top not in (None, "") and float(top) > 0 else None
    rot = getattr(ds, "RotationInformationSequence", None)
    if rot:
        item = rot[0]
        per_view = getattr(item, "ActualFrameDuration", None)
        views = getattr(item, "NumberOfFramesInRotation", None)
        if per_view not in (None, "") and views not in (None, ""):
            seconds = float(per_view) / 1000.0 * int(views)
            if seconds > 0:
                if top_s is not None and abs(top_s / seconds - 1.0) > 0.01 and warnings is not None:
                    warnings.append(
                        f"{path}: top-level ActualFrameDuration (0018,1242) {top_s:g} s differs from the rotation "
                        f"time {seconds:g} s (per-view time x views); used {seconds:g} s (override with "
                        "acquisition_duration_s if the calibration refers to the other)")
                return seconds, ("ActualFrameDuration (0018,1242) x NumberOfFramesInRotation (0054,0053) "
                                 "in Rotation Information Sequence (0054,0052)")
    if top_s is not None:
        return top_s, "ActualFrameDuration (0018,1242)"
    return None, ""


def to_bqml(stored: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, ds, path: str,
            voxel_ml: float, acquisition_utc: _dt.datetime, injection_utc: _dt.datetime,
            half_life_s: float, half_life_source: str, overrides: Overrides, ctx: TimeContext,
            warnings: List[str], rwvm: Optional[List[Tuple[float, float]]] = None,
            head_rates: Optional[HeadRates] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Activity concentration (Bq/mL, float32, frames first) at the acquisition start.

    ``stored``: (frames, rows, cols) stored values; ``slopes``/``intercepts``: per-frame modality
    rescale; ``rwvm``: per-frame (slope, intercept) to Bq/mL when mapped by RWVM; ``head_rates``:
    the observed rate per detector head, required for a counts image when a dead time is given.
    """
    lam = math.log(2.0) / half_life_s
    mode, source = units_mode(ds, path)
    duration, duration_source = acquisition_duration_s(ds, path, overrides, warnings)
    conv: Dict[str, Any] = {
        "mode": mode, "source": source, "half_life_h": half_life_s / 3600.0,
        "half_life_source": half_life_source, "frame_duration_s": duration,
        "frame_duration_source": duration_source, "calibration_cps_per_mbq": None,
        "decay_correction_header": None, "decay_factor": 1.0, "dead_time_s": None,
        "dead_time_factor": 1.0, "dead_time_correction": "not applied: no dead time given (--dead-time-s)",
        "count_rate_source": None,
    }
    if rwvm is not None:
        s = np.array([v[0] for v in rwvm])[:, None, None]
        b = np.array([v[1] for v in rwvm])[:, None, None]
        values = stored.astype(np.float64) * s + b
    else:
        values = stored.astype(np.float64) * slopes[:, None, None] + intercepts[:, None, None]
    if mode == "bqml":
        if overrides.calibration_cps_per_mbq is not None:
            warnings.append(f"{path}: images are already in Bq/mL ({source}); the calibration factor "
                            "override is not used")
        if overrides.dead_time_s:
            warnings.append(f"{path}: images are already in Bq/mL; the dead-time override is not used")
        conv["dead_time_correction"] = "not applied: images already in Bq/mL (the camera's quantification)"
        factor = _decay_to_start(ds, path, lam, acquisition_utc, injection_utc, duration, ctx, conv, warnings)
        conv["decay_factor"] = factor
        return (values * factor).astype(np.float32), conv
    cf = overrides.calibration_cps_per_mbq
    if cf is None:
        raise DicomInputError(f"{path}: {source} (no {RWVM} in Bq/ml) and no calibration factor: pass "
                              "--calibration-cps-per-mbq (camera calibration in cps/MBq) or --calibration CAL.json "
                              "(startnet calibrate)")
    if duration is None:
        raise DicomInputError(f"{path}: counts image without acquisition duration: ActualFrameDuration "
                              "(0018,1242) is missing (also in the Rotation Information Sequence (0054,0052))")
    conv["calibration_cps_per_mbq"] = cf
    dt_factor = 1.0
    if overrides.dead_time_s:
        if head_rates is None:
            raise InputError(f"{path}: dead time {overrides.dead_time_s:g} s given but no observed count rate per "
                             "detector head: pass --count-rate-kcps or add the projections")
        dt_factor, per_head = image_factor(head_rates, overrides.dead_time_s, path)
        weights = np.asarray(head_rates.counts, dtype=np.float64)
        conv["dead_time_s"] = overrides.dead_time_s
        conv["observed_count_rate_cps"] = float(np.dot(weights, head_rates.rates_cps) / weights.sum())
        conv.update(head_rates.to_dict())
        conv["dead_time_factor_per_head"] = per_head
        conv["dead_time_correction"] = (f"paralysable, tau {overrides.dead_time_s:g} s, rate per head from "
                                        f"{head_rates.source}: {head_rates.detail}")
    conv["dead_time_factor"] = dt_factor
    decay_during = lam * duration / (1.0 - math.exp(-lam * duration))
    conv["decay_factor"] = decay_during
    mbq_per_count = decay_during * dt_factor / (cf * duration)
    return (values * (mbq_per_count * 1e6 / voxel_ml)).astype(np.float32), conv


def _decay_to_start(ds, path: str, lam: float, acquisition_utc: _dt.datetime, injection_utc: _dt.datetime,
                    duration: Optional[float], ctx: TimeContext, conv: Dict[str, Any],
                    warnings: List[str]) -> float:
    header = str(getattr(ds, "DecayCorrection", "") or "").strip().upper()
    conv["decay_correction_header"] = header or None
    ref_text = str(getattr(ds, "DecayCorrectionDateTime", "") or "").strip()
    ref_utc = None
    if ref_text:
        naive, explicit = parse_dt(ref_text, path, "DecayCorrectionDateTime (0018,9701)")
        ref_utc = ctx.to_utc(naive, "DecayCorrectionDateTime", explicit)
    if not header:
        warnings.append(f"{path}: DecayCorrection (0054,1102) missing; Bq/mL values taken as the activity at "
                        "the acquisition start (START)")
        header = "START"
    if header in ("START", "ADMIN"):
        if ref_utc is None:
            ref_utc = acquisition_utc if header == "START" else injection_utc
        elapsed_s = (acquisition_utc - ref_utc).total_seconds()
        conv["decay_reference_utc"] = ref_utc.isoformat()
        return math.exp(-lam * elapsed_s)
    if header == "NONE":
        if duration is None:
            warnings.append(f"{path}: DecayCorrection NONE but no acquisition duration; the mean activity "
                            "over the acquisition is used as the start value (error < 0.1 % for < 40 min)")
            return 1.0
        return lam * duration / (1.0 - math.exp(-lam * duration))
    raise DicomInputError(f"{path}: DecayCorrection (0054,1102) is {header!r}, expected START, ADMIN or NONE")
