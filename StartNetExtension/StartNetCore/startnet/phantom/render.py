"""SPECT image formation: activity transport onto the SPECT grid, PSF blur, counts and noise.

Activity is conserved exactly: each CT voxel's activity (reference pose) is moved with the time
point's rigid transform and distributed over the 8 nearest SPECT voxel centres with trilinear
weights that sum to one (mass-conserving "splatting", a numba kernel). Activity leaving the SPECT
field of view is lost (it does not happen for the phantom: the body lies well inside).

PSF: isotropic Gaussian of ``psf_fwhm_mm`` (177Lu, medium-energy collimator, reconstruction with
resolution recovery: ~11 mm), applied with zero padding (the body is far from the edges).

Counts: expected reconstructed counts per voxel ``N = CF * A(t_start) * (1 - exp(-lambda T)) /
lambda`` (physical decay during the acquisition only, the model every CF-based quantification
inverts), then Poisson noise per voxel when noise is on.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy import ndimage

from startnet.phantom.config import GridSpec
from startnet.physics.lu177 import LU177


@numba.njit(cache=True)
def _splat(labels, value_lut, ct_origin, ct_spacing, matrix, offset, sp_origin, sp_spacing, out):  # pragma: no cover
    nz, ny, nx = labels.shape
    oz, oy, ox = out.shape
    for k in range(nz):
        pz = ct_origin[2] + ct_spacing[2] * k
        for j in range(ny):
            py = ct_origin[1] + ct_spacing[1] * j
            for i in range(nx):
                value = value_lut[labels[k, j, i]]
                if value == 0.0:
                    continue
                px = ct_origin[0] + ct_spacing[0] * i
                qx = matrix[0, 0] * px + matrix[0, 1] * py + matrix[0, 2] * pz + offset[0]
                qy = matrix[1, 0] * px + matrix[1, 1] * py + matrix[1, 2] * pz + offset[1]
                qz = matrix[2, 0] * px + matrix[2, 1] * py + matrix[2, 2] * pz + offset[2]
                ux = (qx - sp_origin[0]) / sp_spacing[0]
                uy = (qy - sp_origin[1]) / sp_spacing[1]
                uz = (qz - sp_origin[2]) / sp_spacing[2]
                x0 = int(math.floor(ux))
                y0 = int(math.floor(uy))
                z0 = int(math.floor(uz))
                fx = ux - x0
                fy = uy - y0
                fz = uz - z0
                for dz in range(2):
                    zz = z0 + dz
                    if zz < 0 or zz >= oz:
                        continue
                    wz = fz if dz == 1 else 1.0 - fz
                    for dy in range(2):
                        yy = y0 + dy
                        if yy < 0 or yy >= oy:
                            continue
                        wy = fy if dy == 1 else 1.0 - fy
                        for dx in range(2):
                            xx = x0 + dx
                            if xx < 0 or xx >= ox:
                                continue
                            wx = fx if dx == 1 else 1.0 - fx
                            out[zz, yy, xx] += value * wz * wy * wx
    return out


def splat_activity(compartments: np.ndarray, activity_per_voxel_mbq: np.ndarray, ct_grid: GridSpec,
                   spect_grid: GridSpec, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Activity (MBq) per SPECT voxel (z, y, x, float64) of the moved patient.

    ``activity_per_voxel_mbq[c]`` is the activity of one CT voxel of compartment ``c``;
    ``matrix``/``offset`` map reference points to the time point's space (T(p) = M p + b).
    """
    out = np.zeros(spect_grid.shape_zyx, dtype=np.float64)
    _splat(compartments, np.ascontiguousarray(activity_per_voxel_mbq, dtype=np.float64),
           np.asarray(ct_grid.origin_lps_mm, dtype=np.float64), np.asarray(ct_grid.spacing_mm, dtype=np.float64),
           np.ascontiguousarray(matrix, dtype=np.float64), np.ascontiguousarray(offset, dtype=np.float64),
           np.asarray(spect_grid.origin_lps_mm, dtype=np.float64),
           np.asarray(spect_grid.spacing_mm, dtype=np.float64), out)
    return out


def gaussian_psf(image: np.ndarray, spacing_mm, fwhm_mm: float) -> np.ndarray:
    """Isotropic Gaussian blur (FWHM in mm) of a (z, y, x) array with given (x, y, z) spacing."""
    sigma_mm = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    sigma_vox = [sigma_mm / spacing_mm[2], sigma_mm / spacing_mm[1], sigma_mm / spacing_mm[0]]
    return ndimage.gaussian_filter(image, sigma=sigma_vox, mode="constant", cval=0.0, truncate=4.0)


def counts_per_mbq(calibration_cps_per_mbq: float, frame_duration_s: float) -> float:
    """Expected counts per MBq present at the acquisition start (physical decay during the frame)."""
    lam = LU177.decay_constant_per_s
    return calibration_cps_per_mbq * (1.0 - math.exp(-lam * frame_duration_s)) / lam
