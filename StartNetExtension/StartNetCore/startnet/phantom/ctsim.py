"""CT image of one time point: the patient moved rigidly, the table fixed, fresh Gaussian noise.

The moved image is the noise-free reference CT pulled through the inverse of the time point's
transform with trilinear interpolation (partial-volume edges, like a real scan of a smooth
patient), computed straight from the compartment map and its CT-number table by a numba kernel
(parallel over slices). Noise: independent Gaussian per voxel (sigma ``noise_hu``), drawn as
uniform 16-bit indices into a table of 65536 equiprobable Gaussian quantiles (exact to 1 HU,
several times faster than floating-point normal draws on clinical grids).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import SimpleITK as sitk
from scipy.special import ndtri

from startnet.phantom import anatomy, motion
from startnet.phantom.config import GridSpec

CT_MIN_HU, CT_MAX_HU = -1024, 3071


@numba.njit(cache=True, parallel=True)
def _pull_hu(comp, hu_lut, origin, spacing, matrix, offset, air, out):  # pragma: no cover
    nz, ny, nx = comp.shape
    for k in numba.prange(nz):
        qz = origin[2] + spacing[2] * k
        for j in range(ny):
            qy = origin[1] + spacing[1] * j
            # continuous source index = base + (row-0 column of the matrix) * qx, per axis
            bx = (matrix[0, 1] * qy + matrix[0, 2] * qz + offset[0] - origin[0]) / spacing[0]
            by = (matrix[1, 1] * qy + matrix[1, 2] * qz + offset[1] - origin[1]) / spacing[1]
            bz = (matrix[2, 1] * qy + matrix[2, 2] * qz + offset[2] - origin[2]) / spacing[2]
            for i in range(nx):
                qx = origin[0] + spacing[0] * i
                ux = bx + matrix[0, 0] * qx / spacing[0]
                uy = by + matrix[1, 0] * qx / spacing[1]
                uz = bz + matrix[2, 0] * qx / spacing[2]
                x0 = int(math.floor(ux))
                y0 = int(math.floor(uy))
                z0 = int(math.floor(uz))
                if 0 <= x0 < nx - 1 and 0 <= y0 < ny - 1 and 0 <= z0 < nz - 1:
                    c = comp[z0, y0, x0]
                    if (comp[z0, y0, x0 + 1] == c and comp[z0, y0 + 1, x0] == c and comp[z0, y0 + 1, x0 + 1] == c
                            and comp[z0 + 1, y0, x0] == c and comp[z0 + 1, y0, x0 + 1] == c
                            and comp[z0 + 1, y0 + 1, x0] == c and comp[z0 + 1, y0 + 1, x0 + 1] == c):
                        out[k, j, i] = int(round(hu_lut[c]))  # uniform neighbourhood: no interpolation
                        continue
                fx = ux - x0
                fy = uy - y0
                fz = uz - z0
                acc = 0.0
                for dz in range(2):
                    zz = z0 + dz
                    wz = fz if dz == 1 else 1.0 - fz
                    for dy in range(2):
                        yy = y0 + dy
                        wy = fy if dy == 1 else 1.0 - fy
                        for dx in range(2):
                            xx = x0 + dx
                            wx = fx if dx == 1 else 1.0 - fx
                            if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                                value = hu_lut[comp[zz, yy, xx]]
                            else:
                                value = air
                            acc += wz * wy * wx * value
                out[k, j, i] = int(round(acc))
    return out


def gaussian_table(sigma_hu: float) -> np.ndarray:
    """65536 equiprobable Gaussian CT-noise values (int16 HU): indexed by uniform uint16 draws."""
    quantiles = (np.arange(65536, dtype=np.float64) + 0.5) / 65536.0
    return np.rint(sigma_hu * ndtri(quantiles)).astype(np.int16)


def moved_ct(compartments: np.ndarray, grid: GridSpec, transform: sitk.Euler3DTransform, noise_hu: float,
             rng: np.random.Generator) -> sitk.Image:
    """Int16 HU image of the patient moved by ``transform`` (reference point -> this time point)."""
    inverse_matrix, inverse_offset = motion.affine_parts(transform.GetInverse())
    hu = np.empty(compartments.shape, dtype=np.int16)
    _pull_hu(compartments, anatomy.hu_lut().astype(np.float64), np.asarray(grid.origin_lps_mm, dtype=np.float64),
             np.asarray(grid.spacing_mm, dtype=np.float64), np.ascontiguousarray(inverse_matrix),
             np.ascontiguousarray(inverse_offset), float(anatomy.AIR_HU), hu)
    hu[:, anatomy.table_mask(grid)] = int(anatomy.TABLE_HU)  # the table does not move with the patient
    if noise_hu > 0:
        hu += gaussian_table(noise_hu)[rng.integers(0, 65536, size=hu.shape, dtype=np.uint16)]
    np.clip(hu, CT_MIN_HU, CT_MAX_HU, out=hu)
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(grid.spacing_mm)
    image.SetOrigin(grid.origin_lps_mm)
    return image
