"""Voxel S-value kernels from radial energy-deposition profiles (cube-to-cube integration).

For a source uniformly distributed in the central voxel and a target voxel displaced by ``d``
(voxel edges a = (ax, ay, az)), the energy deposited in the target per decay is

    E(d) = V * integral e(z) g(z - d) dz,   g(u) = prod_i max(0, 1 - |u_i| / a_i) / a_i,

where e(z) is the point-source energy density (energy per volume) and g the normalised
autocorrelation of the voxel box. The point kernel is given as energies per spherical shell; the
integral is evaluated shell by shell with g averaged over the shell (three volume-uniform radii x
4096 directions, mirrored into all octants so that the kernel keeps the voxel's symmetry). Because
the lattice translates of V g sum to one everywhere,
sum_d E(d) equals the shell energy total exactly: the energy balance of the voxel kernel is only
limited by the extent over which it is evaluated. Beyond the near block (offsets > 3 voxels on
some axis; photons only) the smooth point kernel is evaluated at the voxel centre with the
second-order cube-to-cube correction: g has variance a_i^2 / 6 per axis, so
S(d) ~ e(d) + sum_i (a_i^2 / 12) d2e/dx_i2, with e taken as ~1/r^2 locally (the exponential and
build-up vary over centimetres): factor 1 + sum_i (a_i^2 / 12)(8 x_i^2 / r^4 - 2 / r^2),
accurate to O((a/r)^4), i.e. better than 0.1 % from 4 voxels on.
Dose to water: S(d) = E(d) / (rho_water V), converted to Gy per MBq.h.
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is installed on first use in Slicer; committed kernels load without it
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    def njit(*_args, **_kwargs):
        return lambda func: func

MEV_TO_J = 1.602176634e-13
DECAYS_PER_MBQ_H = 3.6e9
WATER_G_PER_MM3 = 1.0e-3
N_DIRECTIONS = 4096
# bump when the voxel integration changes: cached kernels of another build are rebuilt
BUILD_VERSION = "2"
N_SUBRADII = 3


def fibonacci_directions(n: int = N_DIRECTIONS) -> np.ndarray:
    """Unit vectors (x, y, z): a Fibonacci sphere set folded into one octant and mirrored into
    all eight, so that kernels are exactly symmetric under reflection of each axis."""
    i = np.arange(n // 8) * 8 + 0.5
    cos_t = 1.0 - 2.0 * i / n
    phi = math.pi * (1.0 + 5.0 ** 0.5) * i
    sin_t = np.sqrt(1.0 - cos_t ** 2)
    octant = np.abs(np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1))
    signs = np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=float)
    return (signs[:, None, :] * octant[None, :, :]).reshape(-1, 3)


@njit(cache=True)
def _near_block(r_inner, r_outer, shell_mev, a_xyz, half_xyz, dirs, n_sub):
    hx, hy, hz = half_xyz[0], half_xyz[1], half_xyz[2]
    out = np.zeros((2 * hz + 1, 2 * hy + 1, 2 * hx + 1))
    ax, ay, az = a_xyz[0], a_xyz[1], a_xyz[2]
    inv_vol = 1.0 / (ax * ay * az)
    n_dir = dirs.shape[0]
    for iz in range(-hz, hz + 1):
        for iy in range(-hy, hy + 1):
            for ix in range(-hx, hx + 1):
                dx, dy, dz = ix * ax, iy * ay, iz * az
                lo = math.sqrt(max(0.0, abs(dx) - ax) ** 2 + max(0.0, abs(dy) - ay) ** 2
                               + max(0.0, abs(dz) - az) ** 2)
                hi = math.sqrt((abs(dx) + ax) ** 2 + (abs(dy) + ay) ** 2 + (abs(dz) + az) ** 2)
                total = 0.0
                for s in range(shell_mev.shape[0]):
                    if shell_mev[s] == 0.0 or r_outer[s] <= lo or r_inner[s] >= hi:
                        continue
                    acc = 0.0
                    r1c = r_inner[s] ** 3
                    r2c = r_outer[s] ** 3
                    for k in range(n_sub):
                        r = (r1c + (k + 0.5) / n_sub * (r2c - r1c)) ** (1.0 / 3.0)
                        for j in range(n_dir):
                            ux = abs(r * dirs[j, 0] - dx) / ax
                            uy = abs(r * dirs[j, 1] - dy) / ay
                            uz = abs(r * dirs[j, 2] - dz) / az
                            if ux < 1.0 and uy < 1.0 and uz < 1.0:
                                acc += (1.0 - ux) * (1.0 - uy) * (1.0 - uz)
                    total += shell_mev[s] * acc * inv_vol / (n_sub * n_dir)
                out[iz + hz, iy + hy, ix + hx] = total
    return out  # MeV per mm^3 per decay = g(z-d)-weighted energy density


def _to_gy_per_mbq_h(mev_per_mm3):
    return mev_per_mm3 / WATER_G_PER_MM3 * MEV_TO_J * 1.0e3 * DECAYS_PER_MBQ_H


def near_field_kernel(edges_mm: np.ndarray, shell_mev: np.ndarray, voxel_size_mm, half_xyz) -> np.ndarray:
    """Cube-to-cube S-values (Gy per MBq.h, float64, z-y-x) for |index offsets| <= ``half_xyz``."""
    a = np.asarray(voxel_size_mm, dtype=float)
    block = _near_block(np.asarray(edges_mm[:-1], float), np.asarray(edges_mm[1:], float),
                        np.asarray(shell_mev, float), a, np.asarray(half_xyz, np.int64),
                        fibonacci_directions(), N_SUBRADII)
    return _to_gy_per_mbq_h(block)


def electron_kernel(edges_mm: np.ndarray, shell_mev: np.ndarray, voxel_size_mm) -> np.ndarray:
    """Electron voxel kernel covering the full range of the profile (Gy per MBq.h)."""
    nonzero = np.nonzero(shell_mev)[0]
    r_max = float(edges_mm[nonzero[-1] + 1]) if nonzero.size else 0.0
    half = [max(1, int(math.ceil(r_max / a))) for a in voxel_size_mm]
    return near_field_kernel(edges_mm, shell_mev, voxel_size_mm, half)


def photon_near_half(voxel_size_mm, radius_mm: float) -> list:
    """Half-widths (x, y, z) of the cube-to-cube near block of the photon kernel: 3 voxels."""
    return [min(int(math.floor(radius_mm / a)), 3) for a in voxel_size_mm]


def photon_kernel(edges_mm: np.ndarray, shell_mev: np.ndarray, voxel_size_mm, radius_mm: float,
                  near_block=None) -> np.ndarray:
    """Photon voxel kernel out to ``radius_mm`` (zero beyond): cube-to-cube near block (given as
    ``near_block`` or computed, see photon_near_half), voxel-centre point kernel beyond (Gy per MBq.h)."""
    a = np.asarray(voxel_size_mm, dtype=float)
    half_far = [int(math.floor(radius_mm / ai)) for ai in a]
    if near_block is None:
        near_block = near_field_kernel(edges_mm, shell_mev, a, photon_near_half(a, radius_mm))
    hz, hy, hx = (s // 2 for s in near_block.shape)
    r_mid = ((edges_mm[1:] ** 3 + edges_mm[:-1] ** 3) / 2.0) ** (1.0 / 3.0)
    shell_volume = 4.0 / 3.0 * math.pi * (edges_mm[1:] ** 3 - edges_mm[:-1] ** 3)
    log_density = np.log(np.maximum(shell_mev / shell_volume, 1e-300))
    axes = [np.arange(-h, h + 1, dtype=np.float32) * np.float32(s) for h, s in zip(half_far[::-1], a[::-1])]
    r = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
    kernel = np.exp(np.interp(r, r_mid, log_density)).astype(np.float32)
    kernel[r > radius_mm] = 0.0
    # second-order cube-to-cube correction of the point value (module docstring)
    r2 = np.maximum(r * r, np.float32(1e-6))
    correction = np.ones_like(r2)
    for i, (axis, spacing) in enumerate(zip(axes, a[::-1])):
        x2 = (axis * axis).reshape([-1 if j == i else 1 for j in range(3)])
        correction += np.float32(spacing * spacing / 12.0) * (8.0 * x2 / (r2 * r2) - 2.0 / r2)
    kernel *= correction
    del r, r2, correction
    kernel *= np.float32(_to_gy_per_mbq_h(1.0))
    cz, cy, cx = half_far[2], half_far[1], half_far[0]
    kernel[cz - hz:cz + hz + 1, cy - hy:cy + hy + 1, cx - hx:cx + hx + 1] = near_block
    return kernel


def kernel_energy_mev_per_decay(kernel_gy_per_mbq_h: np.ndarray, voxel_size_mm) -> float:
    """sum S * m_voxel expressed as MeV per decay (the energy balance of a kernel)."""
    mass_kg = float(np.prod(voxel_size_mm)) * WATER_G_PER_MM3 * 1.0e-3
    return float(np.sum(kernel_gy_per_mbq_h, dtype=np.float64)) * mass_kg / (MEV_TO_J * DECAYS_PER_MBQ_H)


def energy_within_radius_mev(edges_mm: np.ndarray, shell_mev: np.ndarray, radius_mm: float) -> float:
    """Energy deposited inside a sphere of ``radius_mm`` (linear interpolation within a shell)."""
    cumulative = np.concatenate([[0.0], np.cumsum(shell_mev)])
    return float(np.interp(radius_mm, edges_mm, cumulative))
