"""Absorbed dose (LED, voxel S-value kernels, density correction), DVH, BED and uncertainty.

Public API of the dose part (names are imported lazily so that ``import startnet.dosimetry``
works without numba):
    get_kernel(voxel_size_mm, nuclide=LU177, photon_radius_mm=250.0) -> VoxelKernel   (kernels)
    hu_to_density_g_per_ml(ct_hu, curve=DEFAULT_HU_DENSITY_CURVE), density_on_grid(ct, reference)
                                                                                      (density)
    dose_led, dose_vsv, dose_vsv_density -> DoseMaps; organ_led_gy, structure_mass_g  (engines)
    structure_dose_stats -> DoseStats; accumulate_cycles; accumulate_structure_values (dvh)
    DOSE_METHODS, DEFAULT_DOSE_METHOD (methods: the engine names); dose_maps(method, ...) (engines)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "get_kernel": "kernels", "VoxelKernel": "kernels", "KernelEnergyBalance": "kernels",
    "hu_to_density_g_per_ml": "density", "density_on_grid": "density", "DEFAULT_HU_DENSITY_CURVE": "density",
    "DoseMaps": "engines", "dose_led": "engines", "dose_vsv": "engines", "dose_vsv_density": "engines",
    "organ_led_gy": "engines", "structure_mass_g": "engines",
    "DoseStats": "dvh", "structure_dose_stats": "dvh", "accumulate_cycles": "dvh",
    "accumulate_structure_values": "dvh",
    "DOSE_METHODS": "methods", "DEFAULT_DOSE_METHOD": "methods", "dose_maps": "engines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"startnet.dosimetry.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'startnet.dosimetry' has no attribute '{name}'")
