"""Absorbed-dose engines on the TIA grid: organ MIRD LED, voxel LED, voxel S-value convolution
with and without CT density correction. Electrons and photons are kept separate and summed.

Contract (all voxel engines return :class:`DoseMaps` on the grid of ``tia_mbq_h``):
    dose_led(tia_mbq_h, voxel_volume_ml, density_g_per_ml=1.0, nuclide=LU177, photons="none",
             kernel=None, low_density_threshold_g_per_ml=0.1)
    dose_vsv(tia_mbq_h, kernel, voxel_size_mm=None)
    dose_vsv_density(tia_mbq_h, kernel, density_g_per_ml, low_density_threshold_g_per_ml=0.1,
                     scale_photons=False, voxel_size_mm=None)
    organ_led_gy(tia_mbq_h, mass_g, nuclide=LU177, photon_absorbed_fraction=0.0) -> float
Arrays are numpy (z, y, x); ``tia_mbq_h`` is time-integrated activity per voxel in MBq.h;
``voxel_size_mm`` (x, y, z), when given, is checked against the kernel's.

Physics choices
    * LED: D_e = TIA * Delta_e / (rho V) (ICRP 107 Delta_e = 0.147923 MeV per decay).
      ``photons``: "none" (electrons only, the usual LED), "local" (all photon energy deposited
      locally: an upper bound), or "kernel" (photon part of ``kernel`` convolved, dose to water).
    * Kernel dose is dose to water. Density correction (Dieudonne 2013): the electron part is
      scaled by rho_water / rho_voxel, because electron energy is absorbed within about a
      millimetre and so divides by the local mass. The photon part is NOT scaled by default: the
      photon dose per unit mass follows mu_en/rho, which is nearly the same for all soft tissues,
      lung and water, so 1/rho scaling would wrongly multiply lung photon dose ~4x
      (``scale_photons=True`` applies it anyway, for comparison with tools that do).
    * Low density (air, and SPECT spill-over outside the body): voxels with rho below
      ``low_density_threshold_g_per_ml`` (default 0.1 g/mL, i.e. below about -900 HU) are not
      upscaled; they keep the dose-to-water value (LED uses rho = 1 there). Their number is
      recorded in ``DoseMaps.notes``. Lung (~0.26 g/mL) is above the threshold and is scaled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Union

import numpy as np

from startnet.dosimetry.convolution import convolve_same, convolve_small
from startnet.dosimetry.kernels import VoxelKernel
from startnet.dosimetry.methods import LED, VSV, VSV_DENSITY, dose_method
from startnet.errors import GeometryError, InputError
from startnet.physics.lu177 import LU177, Nuclide

WATER_DENSITY_G_PER_ML = 1.0
DEFAULT_LOW_DENSITY_THRESHOLD_G_PER_ML = 0.1
SMALL_KERNEL_VOXELS = 27  # kernels up to 3x3x3 are applied by direct convolution


@dataclass
class DoseMaps:
    total_gy: np.ndarray  # float32 (z, y, x)
    electron_gy: np.ndarray
    photon_gy: np.ndarray
    method: str  # a name of startnet.dosimetry.methods.DOSE_METHODS
    kernel_provenance: Dict[str, str] = field(default_factory=dict)
    notes: Dict[str, str] = field(default_factory=dict)


def _check_tia(tia_mbq_h) -> np.ndarray:
    tia = np.asarray(tia_mbq_h, dtype=np.float32)
    if tia.ndim != 3:
        raise GeometryError(f"TIA map: expected a 3-D (z, y, x) array in MBq.h, got shape {tia.shape}")
    if not np.all(np.isfinite(tia)):
        raise InputError("TIA map: contains NaN or infinite values (expected finite MBq.h per voxel)")
    return tia


def _check_density(density_g_per_ml, shape) -> np.ndarray:
    rho = np.asarray(density_g_per_ml, dtype=np.float32)
    if rho.ndim == 0:
        rho = np.full(shape, float(rho), dtype=np.float32)
    if rho.shape != tuple(shape):
        raise GeometryError(f"density map: shape {rho.shape} differs from the TIA grid {tuple(shape)}")
    if not np.all(np.isfinite(rho)) or np.any(rho <= 0):
        raise InputError("density map: expected finite densities > 0 g/mL (convert CT with hu_to_density_g_per_ml)")
    return rho


def _effective_density(rho: np.ndarray, threshold: float):
    low = rho < threshold
    return np.where(low, np.float32(WATER_DENSITY_G_PER_ML), rho), int(np.count_nonzero(low))


def _check_kernel_size(kernel: VoxelKernel, voxel_size_mm: Optional[Sequence[float]]) -> None:
    if voxel_size_mm is None:
        return
    size = np.asarray(voxel_size_mm, dtype=float)
    if size.shape != (3,) or not np.allclose(size, kernel.voxel_size_mm, rtol=1e-3):
        raise GeometryError(f"kernel voxel size {kernel.voxel_size_mm} mm (x, y, z) does not match the TIA grid "
                            f"spacing {tuple(size)}; use get_kernel(spacing)")


def _convolve_parts(tia: np.ndarray, kernel: VoxelKernel, photons: bool = True):
    e_k = kernel.electron_gy_per_mbq_h
    if e_k.size <= SMALL_KERNEL_VOXELS:
        electron = convolve_small(tia, e_k)
        photon = convolve_same(tia, [kernel.photon_gy_per_mbq_h])[0] if photons else None
    elif photons:
        electron, photon = convolve_same(tia, [e_k, kernel.photon_gy_per_mbq_h])
    else:
        electron, photon = convolve_same(tia, [e_k])[0], None
    if float(tia.min(initial=0.0)) >= 0.0:
        # non-negative activity and kernels: remove float32 FFT round-off (~1e-7 of the maximum)
        for part in (electron, photon):
            if part is not None:
                np.maximum(part, 0.0, out=part)
    return electron, photon


def dose_led(tia_mbq_h, voxel_volume_ml: float, density_g_per_ml: Union[float, np.ndarray] = 1.0,
             nuclide: Nuclide = LU177, photons: str = "none", kernel: Optional[VoxelKernel] = None,
             low_density_threshold_g_per_ml: float = DEFAULT_LOW_DENSITY_THRESHOLD_G_PER_ML) -> DoseMaps:
    """Voxel local energy deposition (electrons), photons per ``photons`` (see module docstring)."""
    tia = _check_tia(tia_mbq_h)
    if not (np.isfinite(voxel_volume_ml) and voxel_volume_ml > 0):
        raise InputError(f"dose_led: voxel_volume_ml {voxel_volume_ml!r}: expected a positive volume in mL")
    rho, n_low = _effective_density(_check_density(density_g_per_ml, tia.shape), low_density_threshold_g_per_ml)
    mass_kg = rho * np.float32(voxel_volume_ml * 1.0e-3)
    electron = tia * np.float32(nuclide.electron_energy_j_per_mbq_h) / mass_kg
    provenance: Dict[str, str] = {}
    if photons == "none":
        photon = np.zeros_like(electron)
    elif photons == "local":
        photon = tia * np.float32(nuclide.photon_energy_j_per_mbq_h) / mass_kg
    elif photons == "kernel":
        if kernel is None:
            raise InputError("dose_led: photons='kernel' needs kernel=get_kernel(spacing)")
        photon = convolve_same(tia, [kernel.photon_gy_per_mbq_h])[0]
        provenance = dict(kernel.provenance)
    else:
        raise InputError(f"dose_led: photons={photons!r}: expected 'none', 'local' or 'kernel'")
    notes = {"photons": photons, "low_density_voxels_not_upscaled": str(n_low),
             "low_density_threshold_g_per_ml": f"{low_density_threshold_g_per_ml:g}"}
    return DoseMaps(electron + photon, electron, photon, LED, provenance, notes)


def dose_vsv(tia_mbq_h, kernel: VoxelKernel, voxel_size_mm: Optional[Sequence[float]] = None) -> DoseMaps:
    """Voxel S-value convolution (dose to water): D = TIA (*) S, electrons and photons separately."""
    tia = _check_tia(tia_mbq_h)
    _check_kernel_size(kernel, voxel_size_mm)
    electron, photon = _convolve_parts(tia, kernel)
    return DoseMaps(electron + photon, electron, photon, VSV, dict(kernel.provenance), {})


def dose_vsv_density(tia_mbq_h, kernel: VoxelKernel, density_g_per_ml,
                     low_density_threshold_g_per_ml: float = DEFAULT_LOW_DENSITY_THRESHOLD_G_PER_ML,
                     scale_photons: bool = False, voxel_size_mm: Optional[Sequence[float]] = None) -> DoseMaps:
    """Kernel convolution with density correction D = D_kernel * rho_water / rho (electrons;
    photons only if ``scale_photons``), voxels below the threshold not upscaled."""
    tia = _check_tia(tia_mbq_h)
    _check_kernel_size(kernel, voxel_size_mm)
    rho, n_low = _effective_density(_check_density(density_g_per_ml, tia.shape), low_density_threshold_g_per_ml)
    electron, photon = _convolve_parts(tia, kernel)
    np.divide(electron, rho, out=electron)  # rho_water = 1 g/mL
    if scale_photons:
        np.divide(photon, rho, out=photon)
    notes = {"low_density_voxels_not_upscaled": str(n_low), "photons_density_scaled": str(bool(scale_photons)),
             "low_density_threshold_g_per_ml": f"{low_density_threshold_g_per_ml:g}"}
    total = electron + photon
    return DoseMaps(total, electron, photon, VSV_DENSITY, dict(kernel.provenance), notes)


def organ_led_gy(tia_mbq_h: float, mass_g: float, nuclide: Nuclide = LU177,
                 photon_absorbed_fraction: float = 0.0) -> float:
    """Organ-level MIRD self-dose: D = TIA (Delta_e + phi Delta_ph) / m, electrons fully absorbed.

    ``mass_g`` should come from the CT (sum of density * voxel volume over the structure, see
    ``structure_mass_g``); ``photon_absorbed_fraction`` phi is the self-absorbed photon fraction
    (0 = electrons only, the usual choice for kidneys; about 0.05-0.1 for a kidney-sized organ).
    """
    if not (np.isfinite(tia_mbq_h) and tia_mbq_h >= 0):
        raise InputError(f"organ_led_gy: tia_mbq_h {tia_mbq_h!r}: expected a finite value >= 0 MBq.h")
    if not (np.isfinite(mass_g) and mass_g > 0):
        raise InputError(f"organ_led_gy: mass_g {mass_g!r}: expected a positive mass in g")
    if not 0.0 <= photon_absorbed_fraction <= 1.0:
        raise InputError(f"organ_led_gy: photon_absorbed_fraction {photon_absorbed_fraction!r}: expected 0..1")
    energy_j = tia_mbq_h * (nuclide.electron_energy_j_per_mbq_h
                            + photon_absorbed_fraction * nuclide.photon_energy_j_per_mbq_h)
    return float(energy_j / (mass_g * 1.0e-3))


def structure_mass_g(mask, density_g_per_ml, voxel_volume_ml: float) -> float:
    """Mass of a structure from the CT density on the TIA grid: sum(rho) * V over the mask."""
    m = np.asarray(mask, dtype=bool)
    rho = _check_density(density_g_per_ml, m.shape)
    return float(np.sum(rho[m], dtype=np.float64) * voxel_volume_ml)


# The engines by their names (startnet.dosimetry.methods), with one call signature:
# (tia_mbq_h, voxel_volume_ml, density_g_per_ml, kernel) -> DoseMaps; photons always by kernel
# convolution (dose to water).
DOSE_ENGINES = {
    LED: lambda tia, voxel_ml, density, kernel: dose_led(tia, voxel_ml, density, photons="kernel", kernel=kernel),
    VSV: lambda tia, voxel_ml, density, kernel: dose_vsv(tia, kernel),
    VSV_DENSITY: lambda tia, voxel_ml, density, kernel: dose_vsv_density(tia, kernel, density),
}


def dose_maps(method: str, tia_mbq_h, voxel_volume_ml: float, density_g_per_ml, kernel) -> DoseMaps:
    """Dose maps with the engine called ``method`` (a name of ``DOSE_METHODS``)."""
    return DOSE_ENGINES[dose_method(method).name](tia_mbq_h, voxel_volume_ml, density_g_per_ml, kernel)
