"""The camera's PSF FWHM fitted to all spheres of a sphere phantom at once.

Model of the image near the spheres (isotropic Gaussian PSF of FWHM w, the spheres' voxel shares
f_k, uniform background):

    y(v) = A * sum_k (G_w * f_k)(v) + b_j(v) * (1 - sum_k (G_w * f_k)(v))

with one sphere concentration A shared by all spheres and a local background b_j for the voxels
nearest sphere j (so a smooth background trend, e.g. near the phantom's wall, is not read as blur).
Fitted over the voxels within ``FIT_REACH_MM`` of each sphere's surface: for a given w the model is
linear in (A, b_1..b_n) (least squares); w minimises the residual sum of squares (bounded Brent).
Standard uncertainties from the Jacobian at the optimum, J = [dy/dw, basis], cov = s^2 (J^T J)^-1
with s^2 the residual variance (white noise assumed: correlated reconstruction noise makes them
optimistic; the recovery command states the spread of the spheres around the fitted curve too).
One Gaussian filter of the spheres' bounding box per evaluation of w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from scipy import ndimage, optimize

FIT_REACH_MM = 25.0
FWHM_BOUNDS_MM = (1.0, 50.0)
SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass
class PsfFit:
    fwhm_mm: float
    fwhm_sd_mm: float
    sphere_bqml: float
    sphere_sd_bqml: float
    background_bqml: List[float]
    background_sd_bqml: List[float]
    residual_sd_bqml: float
    n_voxels: int
    evaluations: int


def blur(shares: np.ndarray, spacing_zyx_mm: Sequence[float], fwhm_mm: float) -> np.ndarray:
    sigma = [fwhm_mm * SIGMA_PER_FWHM / s for s in spacing_zyx_mm]
    return ndimage.gaussian_filter(shares, sigma=sigma, mode="constant", cval=0.0, truncate=4.0)


def _design(blurred: np.ndarray, fit_index: Tuple[np.ndarray, ...], region: np.ndarray, n: int) -> np.ndarray:
    b = blurred[fit_index]
    columns = [b] + [(region == j) * (1.0 - b) for j in range(n)]
    return np.stack(columns, axis=1)


def fit_psf(values: np.ndarray, shares_sum: np.ndarray, fit_mask: np.ndarray, region: np.ndarray, n_spheres: int,
            spacing_zyx_mm: Sequence[float]) -> PsfFit:
    """Fit on a crop: ``values`` (Bq/mL), ``shares_sum`` (sum of the spheres' shares), ``fit_mask`` (voxels
    used), ``region`` (index of the nearest sphere per fitted voxel, same order as the mask's voxels)."""
    fit_index = np.nonzero(fit_mask)
    y = values[fit_index].astype(np.float64)
    calls = [0]

    def solve(fwhm: float):
        calls[0] += 1
        design = _design(blur(shares_sum, spacing_zyx_mm, fwhm), fit_index, region, n_spheres)
        params, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = y - design @ params
        return float(residual @ residual), params, design

    best = optimize.minimize_scalar(lambda w: solve(w)[0], bounds=FWHM_BOUNDS_MM, method="bounded",
                                    options={"xatol": 0.01})
    fwhm = float(best.x)
    sse, params, design = solve(fwhm)
    step = 0.05
    plus = _design(blur(shares_sum, spacing_zyx_mm, fwhm + step), fit_index, region, n_spheres) @ params
    minus = _design(blur(shares_sum, spacing_zyx_mm, fwhm - step), fit_index, region, n_spheres) @ params
    jacobian = np.column_stack([(plus - minus) / (2 * step), design])
    dof = max(len(y) - jacobian.shape[1], 1)
    s2 = sse / dof
    cov = s2 * np.linalg.pinv(jacobian.T @ jacobian)
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    return PsfFit(fwhm, float(sd[0]), float(params[0]), float(sd[1]), [float(v) for v in params[1:]],
                  [float(v) for v in sd[2:]], math.sqrt(s2), int(len(y)), calls[0] + 2)
