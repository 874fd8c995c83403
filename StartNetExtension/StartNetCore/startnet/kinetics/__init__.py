"""Time-activity fitting per structure and per voxel, and time-integrated activity.

Public API:
    fit_tac(times_h, activity_mbq, *, sigma_mbq=None, models=..., nuclide=LU177,
            population_t_eff_h=None, structure="") -> TacFit          (startnet.kinetics.fit)
    trapezoid_fit(...), hybrid_fit(...) -> TacFit                       (startnet.kinetics.piecewise)
    fit_voxels(times_h, activity (T,z,y,x), mask, ...) -> VoxelFitResult (startnet.kinetics.voxel)
    haenscheid_tia, madsen_tia                                          (startnet.kinetics.stp)

``fit_voxels`` needs numba; it is imported on first use so that ``import startnet.kinetics``
works in a Slicer where numba has not been installed yet.
"""

from __future__ import annotations

from startnet.kinetics.fit import DEFAULT_MODELS, fit_tac
from startnet.kinetics.piecewise import hybrid_fit, trapezoid_fit
from startnet.kinetics.population import PopulationTable, default_population_table
from startnet.kinetics.stp import haenscheid_tia, madsen_tia
from startnet.kinetics.tacfit import Candidate, TacFit

__all__ = [
    "DEFAULT_MODELS", "Candidate", "PopulationTable", "TacFit", "VoxelFitResult", "default_population_table",
    "fit_tac", "fit_voxels", "haenscheid_tia", "hybrid_fit", "madsen_tia", "trapezoid_fit",
]


def __getattr__(name):
    if name in ("fit_voxels", "VoxelFitResult", "MODEL_CODES"):
        from startnet.kinetics import voxel

        return getattr(voxel, name)
    raise AttributeError(f"module 'startnet.kinetics' has no attribute '{name}'")
