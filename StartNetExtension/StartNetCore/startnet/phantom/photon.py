"""Independent photon absorbed-dose estimate for the phantom's ground truth (point-kernel method).

Method (documented in truth.json): the time-integrated activity is summed into ~6 mm blocks of
the CT grid and convolved (FFT) with a water point kernel per emission line,

    K(r) = sum_lines y E (mu_en/rho) B(mu r) exp(-mu r) / (4 pi r^2)      [Gy per decay]

with the linear energy-absorption build-up factor B = 1 + ((mu - mu_en)/mu_en) mu r, which makes
the kernel conserve energy in an infinite medium (int K rho 4 pi r^2 dr = sum y E). The medium is
homogeneous water (lungs and bone are not density-corrected; photons leaving the body are not
removed, so doses near the surface are slightly overestimated). Kernel values for neighbouring
blocks average the point kernel over 4^3 x 4^3 staggered sub-points of the source and target
blocks. Lines: 177Lu gammas 208.366 keV (11.0 %), 112.950 keV (6.40 %), 321.3 keV (0.22 %),
249.7 keV (0.21 %); Hf K X-rays lumped at 56 keV with the ICRP-107 X-ray energy per decay
(3.540 keV). Water attenuation/energy-absorption coefficients: NIST (Hubbell & Seltzer) table,
log-log interpolated.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Tuple

import numpy as np
from scipy.signal import fftconvolve

from startnet.physics.lu177 import MEV_TO_J, SECONDS_PER_HOUR

# NIST water: energy keV, mu/rho cm^2/g, mu_en/rho cm^2/g
_WATER_KEV = np.array([50.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, 400.0])
_WATER_MU = np.array([0.2269, 0.2059, 0.1837, 0.1707, 0.1505, 0.1370, 0.1186, 0.1061])
_WATER_MU_EN = np.array([0.04223, 0.03190, 0.02597, 0.02546, 0.02764, 0.02967, 0.03192, 0.03279])

X_RAY_ENERGY_PER_DECAY_KEV = 3.540
X_RAY_LUMP_KEV = 56.0
LINES_KEV_YIELD: Tuple[Tuple[float, float], ...] = (
    (208.366, 0.110),
    (112.950, 0.0640),
    (321.3, 0.0022),
    (249.7, 0.0021),
    (X_RAY_LUMP_KEV, X_RAY_ENERGY_PER_DECAY_KEV / X_RAY_LUMP_KEV),
)
DECAYS_PER_MBQ_H = 1.0e6 * SECONDS_PER_HOUR
WATER_DENSITY_KG_M3 = 1000.0


def water_coefficients_per_mm(energy_kev: float) -> Tuple[float, float]:
    """(mu, mu_en) of water in 1/mm at ``energy_kev`` (log-log interpolation of the NIST table)."""
    le = math.log(energy_kev)
    mu = math.exp(np.interp(le, np.log(_WATER_KEV), np.log(_WATER_MU)))
    mu_en = math.exp(np.interp(le, np.log(_WATER_KEV), np.log(_WATER_MU_EN)))
    return mu / 10.0, mu_en / 10.0  # rho = 1 g/cm^3, 1/cm -> 1/mm


def point_kernel_gy_per_mbq_h(r_mm: np.ndarray) -> np.ndarray:
    """Photon absorbed dose to water at distance r (mm) per MBq.h of a point source in water."""
    r_mm = np.asarray(r_mm, dtype=np.float64)
    r_m = r_mm / 1000.0
    total = np.zeros_like(r_mm)
    for energy_kev, yield_ in LINES_KEV_YIELD:
        mu, mu_en = water_coefficients_per_mm(energy_kev)
        mr = mu * r_mm
        buildup = 1.0 + (mu - mu_en) / mu_en * mr
        mu_en_rho_m2_kg = mu_en * 1000.0 / WATER_DENSITY_KG_M3  # 1/mm -> 1/m, then / (kg/m^3)
        energy_j = energy_kev * 1.0e-3 * MEV_TO_J
        total += yield_ * energy_j * mu_en_rho_m2_kg * buildup * np.exp(-mr) / (4.0 * math.pi * r_m * r_m)
    return total * DECAYS_PER_MBQ_H


def emitted_photon_energy_j_per_mbq_h() -> float:
    return sum(y * e * 1.0e-3 * MEV_TO_J for e, y in LINES_KEV_YIELD) * DECAYS_PER_MBQ_H


@lru_cache(maxsize=4)
def block_kernel(block_mm: Tuple[float, float, float], half_size: Tuple[int, int, int],
                 near: int = 2, sub: int = 4) -> np.ndarray:
    """Kernel on the block grid (z, y, x): mean dose (Gy) in a block per MBq.h in another block.

    Cached (read-only array): phantoms of one preset share it.
    """
    bx, by, bz = block_mm
    nz, ny, nx = half_size
    iz = np.arange(-nz, nz + 1)[:, None, None]
    iy = np.arange(-ny, ny + 1)[None, :, None]
    ix = np.arange(-nx, nx + 1)[None, None, :]
    r = np.sqrt((iz * bz) ** 2 + (iy * by) ** 2 + (ix * bx) ** 2)
    r[nz, ny, nx] = 1.0  # replaced below
    kernel = point_kernel_gy_per_mbq_h(r)
    frac = (np.arange(sub) + 0.5) / sub - 0.5
    src = np.stack(np.meshgrid(frac * bx, frac * by, frac * bz, indexing="ij"), -1).reshape(-1, 3)
    tgt = src + 0.5 * np.array([bx, by, bz]) / sub
    for dz in range(-near, near + 1):
        for dy in range(-near, near + 1):
            for dx in range(-near, near + 1):
                shift = np.array([dx * bx, dy * by, dz * bz])
                d = tgt[:, None, :] + shift[None, None, :] - src[None, :, :]
                value = point_kernel_gy_per_mbq_h(np.sqrt((d * d).sum(-1))).mean()
                if abs(dz) <= nz and abs(dy) <= ny and abs(dx) <= nx:
                    kernel[nz + dz, ny + dy, nx + dx] = value
    kernel.flags.writeable = False
    return kernel


def block_factors(spacing_mm: Tuple[float, float, float], target_mm: float = 6.0) -> Tuple[int, int, int]:
    """Integer block sizes (x, y, z) in voxels giving blocks of about ``target_mm``."""
    return tuple(max(1, int(round(target_mm / s))) for s in spacing_mm)


def photon_dose_per_structure(compartments: np.ndarray, tia_per_voxel_mbq_h: np.ndarray,
                              structure_of_compartment: np.ndarray, n_structures: int,
                              spacing_mm: Tuple[float, float, float]) -> Tuple[np.ndarray, dict]:
    """Mean photon dose (Gy) over the voxels of each structure label 0..n_structures-1.

    ``tia_per_voxel_mbq_h[c]``: time-integrated activity of one voxel of compartment c;
    ``structure_of_compartment[c]``: structure label of compartment c.
    """
    fx, fy, fz = block_factors(spacing_mm)
    nz, ny, nx = compartments.shape
    nzb, nyb, nxb = -(-nz // fz), -(-ny // fy), -(-nx // fx)
    yb = (np.arange(ny) // fy)[:, None]
    xb = (np.arange(nx) // fx)[None, :]
    block2d = (yb * nxb + xb).astype(np.int64)
    n_blocks2d = nyb * nxb
    tia_blocks = np.zeros((nzb, n_blocks2d))
    counts = np.zeros((nzb, n_blocks2d, n_structures))
    tia_lut = np.asarray(tia_per_voxel_mbq_h, dtype=np.float64)
    lut = np.asarray(structure_of_compartment, dtype=np.int64)
    for zb in range(nzb):
        slab = compartments[zb * fz:(zb + 1) * fz]
        ids = np.broadcast_to(block2d, slab.shape).ravel()
        tia_blocks[zb] = np.bincount(ids, weights=tia_lut[slab].ravel(), minlength=n_blocks2d)
        combined = ids * n_structures + lut[slab].ravel()
        counts[zb] = np.bincount(combined, minlength=n_blocks2d * n_structures).reshape(n_blocks2d, n_structures)
    tia_blocks = tia_blocks.reshape(nzb, nyb, nxb)
    block_mm = (float(fx * spacing_mm[0]), float(fy * spacing_mm[1]), float(fz * spacing_mm[2]))
    kernel = block_kernel(block_mm, (int(nzb - 1), int(nyb - 1), int(nxb - 1)))
    dose = fftconvolve(tia_blocks, kernel, mode="same")
    dose = np.maximum(dose, 0.0).reshape(nzb, n_blocks2d)
    per_structure = np.einsum("bs,b->s", counts.reshape(-1, n_structures), dose.ravel())
    voxels = counts.reshape(-1, n_structures).sum(axis=0)
    mean = np.divide(per_structure, voxels, out=np.zeros_like(per_structure), where=voxels > 0)
    info = {"block_mm": list(block_mm), "block_grid_zyx": [nzb, nyb, nxb]}
    return mean, info


def lines_used() -> List[dict]:
    out = []
    for energy, yield_ in LINES_KEV_YIELD:
        mu, mu_en = water_coefficients_per_mm(energy)
        out.append({"energy_kev": energy, "yield_per_decay": yield_, "mu_per_cm": mu * 10, "mu_en_per_cm": mu_en * 10})
    return out
