"""The effective resolution of a patient's own SPECT, checked against the PSF the correction assumes.

The segmented structures (voxel shares f_j, and the rest of the body as one region) are taken as
uniform; for a Gaussian PSF of FWHM w the image is modelled as sum_j c_j (G_w * B * f_j) with
c_j >= 0 fitted (non-negative least squares) over the voxels within ``BAND_FWHM`` x the assumed FWHM
of each structure's outline (inside and out: where blur shapes the counts; per structure, so that a
structure enclosing the others, e.g. the body, does not hide the organs' outlines).

Voxel sampling B: a voxel's share f_j is the structure's share of the voxel's volume (one box-car of
the voxel), but a reconstructed voxel value weighs the activity around its centre with the
reconstruction's interpolating basis (trilinear: a tent, the box-car convolved with itself, as the
phantom renders it). The second box-car is modelled as a Gaussian of the same variance, s^2/12 per
axis (``VOXEL_SAMPLING_VAR``). Without it the estimate read 7-12 % wide on 7 mm voxels and 0-3 % on
4.8 mm voxels; with it -2..+3 % on 7 mm and -8..+1 % on 4.8 mm voxels (9-15 mm PSFs, with and without
noise; the low end is a 9 mm PSF on the clinical preset, where the uniform model's blind spot below
dominates: the hotter renal cortex and the body's fat layer make edges look sharper). The w with the
smallest residual is the blur that best explains the counts around them (bounded Brent search
between ``BOUNDS`` x the assumed FWHM; one Gaussian filter per region and evaluation on the
structures' bounding box). The camera calibration's PSF fit (:mod:`.psf_fit`) has no sampling term
yet: on coarse voxels it reads a few % wider than this check, well inside ``TOLERANCE``.

Images: on their own SPECT grid, never resampled (the run passes the reference time point alone). A
time point registered onto another grid is linearly interpolated, which widens the blur by up to a
voxel (variance up to s^2/4 per axis): the sum of the phantom's four registered time points read
13.8 mm on 7 mm voxels for an 11 mm PSF (without the sampling term), the reference time point alone
11.4 mm (tests: ``Testing/unit/test_patient_psf.py``, estimate within 7 % of the true FWHM for
9-15 mm on 7 mm and 4.8 mm voxels, with and without noise).

Decision (``check_patient_psf``): a ratio estimate / assumed outside 1 +- ``TOLERANCE`` (20 %) gives
a warning naming both. Images sharper than assumed (ratio < 1 - TOLERANCE, e.g. a reconstruction
with full resolution recovery, or no blur) would be over-corrected, so the correction then uses the
estimate; a wider one keeps the assumed/calibrated PSF (the calibration measures it better than a
patient image can) and says so. Non-uniform uptake inside a structure (e.g. the hotter renal cortex)
makes its edges look slightly sharper than a uniform model: the estimate is a check, not a
measurement, hence the wide tolerance.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage, optimize

from startnet.dosimetry.psf_blur import gaussian_blur

TOLERANCE = 0.20
BAND_FWHM = 1.5
BOUNDS = (0.25, 3.0)
# the voxel's own sampling, variance in voxels^2 per axis (a one-voxel box-car: 1/12), module doc
VOXEL_SAMPLING_VAR = 1.0 / 12.0
SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def estimate_effective_fwhm(image: np.ndarray, fractions: Mapping[str, np.ndarray], spacing_zyx_mm: Sequence[float],
                            assumed_fwhm_mm: float, body_fraction: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """{"fwhm_mm", "evaluations", "voxels"} for ``image`` (z, y, x) and the structures' shares."""
    maps = [np.clip(np.asarray(f, np.float32), 0.0, 1.0) for f in fractions.values()]
    reach_mm = BAND_FWHM * assumed_fwhm_mm
    band = outline_band(maps, spacing_zyx_mm, reach_mm)
    if body_fraction is not None:
        rest = np.clip(np.asarray(body_fraction, np.float32) - np.sum(maps, axis=0), 0.0, 1.0)
        if rest.sum() > 0:
            maps.append(rest)
    where = np.argwhere(band)
    pad = [int(math.ceil(BOUNDS[1] * assumed_fwhm_mm * SIGMA_PER_FWHM * 4 / s)) + 1 for s in spacing_zyx_mm]
    low = np.maximum(where.min(axis=0) - pad, 0)
    high = np.minimum(where.max(axis=0) + 1 + np.array(pad), band.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    y = np.asarray(image, np.float64)[box][band[box]]
    cropped = [m[box] for m in maps]
    calls = [0]

    def sse(fwhm: float) -> float:
        calls[0] += 1
        sigma = model_sigma_voxels(fwhm, spacing_zyx_mm)
        design = np.stack([gaussian_blur(m, sigma, truncate=3.0)[band[box]] for m in cropped],
                          axis=1).astype(np.float64)
        _, residual = optimize.nnls(design, y)
        return float(residual) ** 2

    best = optimize.minimize_scalar(sse, bounds=(BOUNDS[0] * assumed_fwhm_mm, BOUNDS[1] * assumed_fwhm_mm),
                                    method="bounded", options={"xatol": 0.05})
    return {"fwhm_mm": float(best.x), "evaluations": calls[0], "voxels": int(y.size)}


def model_sigma_voxels(fwhm_mm: float, spacing_zyx_mm: Sequence[float]) -> List[float]:
    """Gaussian sigma (voxels, z y x) of the model: the PSF plus the voxel's sampling (``VOXEL_SAMPLING_VAR``)."""
    return [math.sqrt((fwhm_mm * SIGMA_PER_FWHM / s) ** 2 + VOXEL_SAMPLING_VAR) for s in spacing_zyx_mm]


def outline_band(maps: Sequence[np.ndarray], spacing_zyx_mm: Sequence[float], reach_mm: float) -> np.ndarray:
    """Voxels within ``reach_mm`` of any structure's outline, inside or out (each structure on its own).

    Per structure, not around their union: a segmentation that holds the body (or any structure enclosing the
    others) would otherwise make the union the whole body and leave only the skin's outline, where the uptake
    is low and uneven (fat layer), instead of the organs' and tumours' (the demo's run read 12.3 mm for 11).
    """
    shape = np.asarray(maps[0].shape)
    pad = np.array([int(math.ceil(reach_mm / s)) + 1 for s in spacing_zyx_mm])
    band = np.zeros(maps[0].shape, bool)
    for m in maps:
        mask = m > 0.5
        where = np.argwhere(mask)
        if where.size == 0 or mask.all():
            continue
        low = np.maximum(where.min(axis=0) - pad, 0)
        high = np.minimum(where.max(axis=0) + 1 + pad, shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
        inner = mask[box]
        outside = ndimage.distance_transform_edt(~inner, sampling=spacing_zyx_mm)
        inside = ndimage.distance_transform_edt(inner, sampling=spacing_zyx_mm)
        band[box] |= (outside <= reach_mm) & (inside <= reach_mm)
    return band


def check_patient_psf(images: List[np.ndarray], fractions: Mapping[str, np.ndarray], spacing_zyx_mm,
                      assumed_fwhm_mm: float, source: str,
                      body_fraction: Optional[np.ndarray] = None) -> Tuple[float, Dict[str, Any], List[str]]:
    """(FWHM to use, record for results.json, warnings); see module doc."""
    total = np.sum([np.asarray(im, np.float64) for im in images], axis=0)
    estimate = estimate_effective_fwhm(total, fractions, spacing_zyx_mm, assumed_fwhm_mm, body_fraction)
    fwhm = estimate["fwhm_mm"]
    ratio = fwhm / assumed_fwhm_mm
    used = assumed_fwhm_mm
    warnings: List[str] = []
    if ratio < 1.0 - TOLERANCE:
        used = fwhm
        warnings.append(f"image resolution: the patient's SPECT is sharper (effective PSF {fwhm:.1f} mm FWHM around "
                        f"the structures) than the assumed PSF {assumed_fwhm_mm:.1f} mm ({source}); the partial-volume "
                        f"correction uses {fwhm:.1f} mm so as not to over-correct")
    elif ratio > 1.0 + TOLERANCE:
        warnings.append(f"image resolution: the patient's SPECT looks blurrier (effective PSF {fwhm:.1f} mm FWHM "
                        f"around the structures) than the assumed PSF {assumed_fwhm_mm:.1f} mm ({source}); calibrate "
                        "this camera (startnet calibrate) or give --psf-fwhm-mm")
    record = {"assumed_fwhm_mm": assumed_fwhm_mm, "assumed_source": source, "estimated_fwhm_mm": round(fwhm, 3),
              "ratio": round(ratio, 4), "tolerance": TOLERANCE, "used_fwhm_mm": used,
              "method": "uniform structures + body remainder blurred by a Gaussian and the voxel's sampling (box-car, "
                        "variance s^2/12 per axis), NNLS, residual minimised over the voxels within "
                        f"{BAND_FWHM:g} x the assumed FWHM of each structure's outline",
              "evaluations": estimate["evaluations"], "voxels": estimate["voxels"]}
    return used, record, warnings
