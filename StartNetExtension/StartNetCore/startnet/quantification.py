"""Structure activity from SPECT with partial-volume correction.

Two methods, recorded in the results:

``gtm`` (default when the structures do not overlap): the geometric transfer matrix of Rousset
et al. (J Nucl Med 1998;39:904). Every structure j (and the rest of the body as one background
region) is taken as uniform with unknown concentration c_j; blurring the structure's voxel
fraction map f_j with the camera PSF predicts what each structure's VOI measures:

    measured_i = sum_v f_i(v) y(v) / sum_v f_i(v) = sum_j GTM_ij c_j,
    GTM_ij = sum_v f_i(v) (PSF * f_j)(v) / sum_v f_i(v).

Solving for c (non-negative least squares) estimates every structure's concentration with
spill-out and spill-in between structures removed. Voxel fractions come from the segmentation at
its own resolution (``load_segmentation(..., fractional=True)``) so SPECT voxels straddling a
border count for the share each structure has of them.

The activity of a structure is then counted in its VOI enlarged by ``enlarged_voi_fwhm`` PSF
widths (default 1.5: practically all of its blurred counts), minus what the other structures
spill into that VOI according to their GTM concentrations, divided by the share of its own
blurred counts the VOI holds. Unlike c_j * volume, this does not assume uniform uptake inside
the structure: a kidney whose activity sits in the cortex spills more out of its own outline
than a uniform one would, and plain GTM under-estimates it (by 7-10 % on the phantom at 7 mm
voxels; -1 % with the enlarged VOI). ``enlarged_voi_fwhm=0`` gives plain GTM.

``rc``: each structure's VOI activity divided by the recovery coefficient of its volume (camera
curve of spheres): simpler, used when structures overlap (e.g. kidney and its cortex) and as a
cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import numpy as np
from scipy import ndimage, optimize

BACKGROUND = "__background__"


@dataclass
class GtmResult:
    """Per structure: activity (MBq) at each time point and the apparent recovery (measured/true)."""

    activity_mbq: Dict[str, np.ndarray]
    concentration_bqml: Dict[str, np.ndarray]
    apparent_recovery: Dict[str, float]
    matrix: np.ndarray
    names: List[str]
    condition_number: float
    warnings: List[str] = field(default_factory=list)


def overlapping(fractions: Mapping[str, np.ndarray], tolerance: float = 0.05) -> bool:
    """True when structures share voxels beyond ``tolerance`` (sum of fractions above 1)."""
    total = np.zeros(next(iter(fractions.values())).shape, np.float32)
    for fraction in fractions.values():
        total += fraction
    return bool(np.any(total > 1.0 + tolerance))


def _ellipsoid(radius_voxels) -> np.ndarray:
    rz, ry, rx = radius_voxels
    zz, yy, xx = np.ogrid[-rz:rz + 1, -ry:ry + 1, -rx:rx + 1]
    return (zz / rz) ** 2 + (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0


def _blur(array: np.ndarray, sigma_voxels) -> np.ndarray:
    return ndimage.gaussian_filter(array.astype(np.float32), sigma=sigma_voxels, mode="constant", truncate=3.0)


def gtm_activities(images_bqml: List[np.ndarray], fractions: Mapping[str, np.ndarray], spacing_zyx_mm,
                   psf_fwhm_mm: float, body_fraction: Optional[np.ndarray] = None,
                   enlarged_voi_fwhm: float = 1.5) -> GtmResult:
    """Partial-volume corrected activity of each structure at each time point (see module doc)."""
    names = list(fractions)
    maps = [np.clip(np.asarray(fractions[n], np.float32), 0.0, 1.0) for n in names]
    warnings: List[str] = []
    if body_fraction is not None:
        background = np.clip(np.asarray(body_fraction, np.float32) - np.sum(maps, axis=0), 0.0, 1.0)
        if background.sum() > 0.01 * sum(float(m.sum()) for m in maps):
            names.append(BACKGROUND)
            maps.append(background)
    sigma = [psf_fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / s for s in spacing_zyx_mm]
    sizes = np.array([float(m.sum()) for m in maps])
    blurred = [_blur(m, sigma) for m in maps]
    n = len(maps)
    matrix = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            matrix[i, j] = float(np.sum(maps[i] * blurred[j], dtype=np.float64)) / sizes[i]
    condition = float(np.linalg.cond(matrix))
    if condition > 1e3:
        warnings.append(f"partial-volume correction: transfer matrix poorly conditioned ({condition:.0f}); "
                        "structures too small or too close for the PSF")
    voxel_ml = float(np.prod(spacing_zyx_mm)) / 1000.0
    activity = {name: np.zeros(len(images_bqml)) for name in names}
    concentration = {name: np.zeros(len(images_bqml)) for name in names}
    vois = []
    if enlarged_voi_fwhm > 0:
        radius = [max(1, int(round(enlarged_voi_fwhm * psf_fwhm_mm / s))) for s in spacing_zyx_mm]
        footprint = _ellipsoid(radius)
        vois = [ndimage.binary_dilation(m > 0, structure=footprint) for m in maps]
        # share of each region's blurred indicator that lands in each VOI
        captured = np.array([[float(blurred[j][vois[i]].sum(dtype=np.float64)) for j in range(n)] for i in range(n)])
    for t, image in enumerate(images_bqml):
        measured = np.array([float(np.sum(m * image, dtype=np.float64)) / s for m, s in zip(maps, sizes)])
        solution, _ = optimize.nnls(matrix, measured)
        for k, name in enumerate(names):
            concentration[name][t] = solution[k]
            activity[name][t] = solution[k] * sizes[k] * voxel_ml * 1e-6
        if vois:
            for k, name in enumerate(names):
                if name == BACKGROUND:
                    continue
                counts = float(image[vois[k]].sum(dtype=np.float64))
                spill_in = sum(solution[j] * captured[k, j] for j in range(n) if j != k)
                own = max(counts - spill_in, 0.0) / (captured[k, k] / sizes[k])
                activity[name][t] = own * voxel_ml * 1e-6
    apparent = {name: float(matrix[k, k]) for k, name in enumerate(names)}
    structures = [name for name in names if name != BACKGROUND]
    return GtmResult({k: activity[k] for k in structures}, {k: concentration[k] for k in structures},
                     {k: apparent[k] for k in structures}, matrix, names, condition, warnings)
