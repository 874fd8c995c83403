"""Camera sensitivity (cps/MBq) from one SPECT of a uniform source of known activity.

    S = R / A(t_start),  A(t_start) = A_ref exp(-lambda (t_start - t_ref))

R is the count rate at the acquisition start, corrected for decay during the acquisition (and dead
time when given) by the loader's counts rule read at 1 cps/MBq (:mod:`.acquisition`), summed over a
VOI: the source (where the smoothed image exceeds half the source's level) dilated by a margin of
several FWHM (``margin_mm``, at least 3 x the camera's PSF when known), so that blur loses no counts
(REFERENCE.md section 7). What lies beyond is reported: the fraction of the image's counts outside
the VOI and the fraction in the margin's outer third (if the latter exceeds ``TIGHT_MARGIN_FRACTION``
the margin was too tight and a warning says so).

Relative standard uncertainty: counting statistics 1/sqrt(N) (N the acquired counts), the activity
measurement (dose calibrator, ``activity_rel_sd``, default 2 %), and the counts beyond the margin
taken as uniformly possible between 0 and the outer third's share (f/sqrt 3).

A SPECT already in Bq/mL gives instead the ratio of the activity it recovers in the VOI to the true
activity: a check of the vendor's quantification (``vendor_quantification_ratio``).
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Dict, List, Optional

import numpy as np
from scipy import ndimage

from startnet.calibration.acquisition import Acquisition
from startnet.errors import InputError

DEFAULT_MARGIN_MM = 40.0
MARGIN_PSF_MULTIPLE = 3.0
DEFAULT_ACTIVITY_REL_SD = 0.02
TIGHT_MARGIN_FRACTION = 0.005
SOURCE_LEVEL_FRACTION = 0.5


def source_mask(values: np.ndarray, spacing_zyx_mm) -> np.ndarray:
    """The source: the smoothed image above half of its level (the 95th percentile of the smoothed image
    over the voxels above a tenth of its maximum), its largest connected part."""
    smoothed = ndimage.gaussian_filter(values.astype(np.float64), sigma=[10.0 / s for s in spacing_zyx_mm])
    top = float(smoothed.max())
    if not top > 0:
        raise InputError("sensitivity: the image holds no counts")
    level = float(np.percentile(smoothed[smoothed > 0.1 * top], 95))
    mask = smoothed > SOURCE_LEVEL_FRACTION * level
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, index=range(1, n + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    return mask


def measure_sensitivity(acq: Acquisition, activity_mbq: float, activity_utc: _dt.datetime, *,
                        margin_mm: Optional[float] = None, psf_fwhm_mm: Optional[float] = None,
                        activity_rel_sd: float = DEFAULT_ACTIVITY_REL_SD) -> Dict[str, Any]:
    """CAL.json values and details (module doc); ``psf_fwhm_mm`` (if known) widens the margin to 3 FWHM."""
    if not activity_mbq > 0:
        raise InputError(f"--activity-mbq must be > 0 MBq, got {activity_mbq}")
    if not activity_rel_sd >= 0:
        raise InputError(f"--activity-rel-sd must be >= 0, got {activity_rel_sd}")
    margin = float(margin_mm) if margin_mm is not None else max(
        DEFAULT_MARGIN_MM, MARGIN_PSF_MULTIPLE * float(psf_fwhm_mm or 0.0))
    values = np.asarray(_array(acq), dtype=np.float64)
    spacing_zyx = tuple(reversed(acq.image.GetSpacing()))
    source = source_mask(values, spacing_zyx)
    distance = ndimage.distance_transform_edt(~source, sampling=spacing_zyx)
    voi = distance <= margin
    outer = voi & (distance > margin * 2.0 / 3.0)
    total = float(values.sum())
    in_voi = float(values[voi].sum())
    outer_fraction = float(values[outer].sum()) / in_voi if in_voi > 0 else 1.0
    warnings: List[str] = []
    if outer_fraction > TIGHT_MARGIN_FRACTION:
        warnings.append(f"sensitivity: {100 * outer_fraction:.2f} % of the counts lie in the outer third of the "
                        f"{margin:g} mm margin: blur or scatter reaches further; use a larger --margin-mm")
    if _touches_border(voi) and values[_border(values.shape) & voi].sum() > 1e-3 * in_voi:
        warnings.append("sensitivity: the VOI with its margin reaches the edge of the field of view; counts "
                        "beyond it are lost (centre the phantom or reconstruct a larger field of view)")
    lam = math.log(2.0) / (float(acq.conversion["half_life_h"]) * 3600.0)
    elapsed_s = (acq.acquisition_utc - activity_utc).total_seconds()
    start_mbq = activity_mbq * math.exp(-lam * elapsed_s)
    recovered = in_voi * acq.voxel_ml * 1e-6  # cps (counts) or MBq (Bq/mL) at the acquisition start
    details: Dict[str, Any] = {
        "activity_mbq": activity_mbq, "activity_datetime_utc": activity_utc.isoformat(),
        "acquisition_start_utc": acq.acquisition_utc.isoformat(), "activity_at_acquisition_start_mbq": start_mbq,
        "decay_to_acquisition_start": math.exp(-lam * elapsed_s),
        "decay_during_acquisition_factor": acq.conversion.get("decay_factor"),
        "dead_time_factor": acq.conversion.get("dead_time_factor"),
        "acquisition_duration_s": acq.conversion.get("frame_duration_s"),
        "voi_margin_mm": margin, "voi_volume_ml": float(voi.sum()) * acq.voxel_ml,
        "source_volume_ml": float(source.sum()) * acq.voxel_ml,
        "counts_outside_voi_fraction": (total - in_voi) / total if total > 0 else 0.0,
        "margin_outer_third_fraction": outer_fraction, "activity_rel_sd": activity_rel_sd, "mode": acq.mode,
    }
    margin_rel = outer_fraction / math.sqrt(3.0)
    if acq.mode == "counts":
        duration = float(acq.conversion["frame_duration_s"])
        acquired_counts = recovered * duration / (float(acq.conversion["decay_factor"])
                                                  * float(acq.conversion.get("dead_time_factor") or 1.0))
        poisson_rel = 1.0 / math.sqrt(max(acquired_counts, 1.0))
        rel_sd = math.sqrt(poisson_rel ** 2 + activity_rel_sd ** 2 + margin_rel ** 2)
        details.update(count_rate_cps=recovered, acquired_counts=acquired_counts, counting_rel_sd=poisson_rel)
        values_out = {"sensitivity_cps_per_mbq": recovered / start_mbq, "sensitivity_rel_sd": rel_sd}
    else:
        rel_sd = math.sqrt(activity_rel_sd ** 2 + margin_rel ** 2)
        details.update(recovered_activity_mbq=recovered)
        values_out = {"vendor_quantification_ratio": recovered / start_mbq,
                      "vendor_quantification_ratio_rel_sd": rel_sd}
    values_out["sensitivity"] = details
    return {"values": values_out, "warnings": warnings + list(acq.warnings)}


def _array(acq: Acquisition) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(acq.image)


def _border(shape) -> np.ndarray:
    border = np.zeros(shape, bool)
    border[[0, -1], :, :] = True
    border[:, [0, -1], :] = True
    border[:, :, [0, -1]] = True
    return border


def _touches_border(mask: np.ndarray) -> bool:
    return bool((mask & _border(mask.shape)).any())
