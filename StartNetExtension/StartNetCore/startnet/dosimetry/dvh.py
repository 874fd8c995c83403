"""Per-structure dose statistics, cumulative DVH and multi-cycle accumulation.

Definitions (volume- or mass-weighted; weights are voxel volumes, or voxel masses when
``voxel_mass_g`` is given, e.g. density * voxel volume from the CT):
    * cumulative DVH V(d) = weighted fraction of the structure receiving a dose >= d;
    * D_x (x in percent) = the minimum dose received by the hottest x % of the structure, i.e.
      the dose at which V(D_x) = x / 100. The voxel dose distribution is treated as continuous
      (each voxel's weight spread evenly around its dose rank), so for a uniform distribution of
      doses between a and b, D_x = b - (b - a) x / 100 (D2 near the maximum, D98 near the minimum);
    * median = D50; V(x Gy) = fraction of the structure receiving >= x Gy.
Accumulation: ``accumulate_cycles`` sums dose (or BED) maps already registered to one reference
grid; ``accumulate_structure_values`` sums per-structure values over cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

from startnet.errors import GeometryError, InputError

DEFAULT_V_THRESHOLDS_GY = (5.0, 10.0, 20.0, 23.0, 30.0)


@dataclass(frozen=True)
class DoseStats:
    mean_gy: float
    min_gy: float
    max_gy: float
    median_gy: float
    d2_gy: float
    d50_gy: float
    d98_gy: float
    v_gy: Dict[float, float]  # threshold Gy -> fraction of the structure with dose >= threshold
    dvh_dose_gy: np.ndarray  # increasing dose bin edges starting at 0
    dvh_volume_fraction: np.ndarray  # V(d) at each of those doses (1 at d = 0, non-increasing)
    n_voxels: int = 0
    weighting: str = "volume"
    extra_d_gy: Dict[float, float] = field(default_factory=dict)


def _weighted_dose_at_volume(sorted_dose: np.ndarray, cum_upper: np.ndarray, weights: np.ndarray,
                             percent: float) -> float:
    """Dose d with V(d) = percent / 100 for the continuous (rank-spread) distribution."""
    # position of each voxel's centre in the cumulative-from-below weight, as a fraction
    total = cum_upper[-1]
    centres = (cum_upper - 0.5 * weights) / total
    quantile = 1.0 - percent / 100.0
    return float(np.interp(quantile, centres, sorted_dose))


def structure_dose_stats(dose_gy, mask, voxel_mass_g=None,
                         v_thresholds_gy: Sequence[float] = DEFAULT_V_THRESHOLDS_GY,
                         d_percents: Sequence[float] = (), n_dvh_bins: int = 200) -> DoseStats:
    """Statistics of ``dose_gy`` over ``mask`` (boolean, same (z, y, x) shape)."""
    dose = np.asarray(dose_gy)
    m = np.asarray(mask)
    if dose.shape != m.shape:
        raise GeometryError(f"dose statistics: dose shape {dose.shape} differs from mask shape {m.shape}")
    m = m.astype(bool)
    values = dose[m].astype(np.float64)
    if values.size == 0:
        raise InputError("dose statistics: the structure mask is empty")
    if not np.all(np.isfinite(values)):
        raise InputError("dose statistics: dose map has NaN or infinite values inside the structure")
    if voxel_mass_g is None:
        weights = np.ones_like(values)
        weighting = "volume"
    else:
        mass = np.asarray(voxel_mass_g, dtype=np.float64)
        weights = np.broadcast_to(mass, dose.shape)[m] if mass.ndim else np.full(values.shape, float(mass))
        if np.any(weights < 0) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
            raise InputError("dose statistics: voxel_mass_g must be finite, >= 0 and not all zero")
        weighting = "mass"
    order = np.argsort(values, kind="stable")
    sorted_dose = values[order]
    w = weights[order]
    cum = np.cumsum(w)
    total = cum[-1]

    def dx(p: float) -> float:
        return _weighted_dose_at_volume(sorted_dose, cum, w, p)

    v_gy = {float(t): float(w[sorted_dose >= t].sum() / total) for t in v_thresholds_gy}
    top = float(sorted_dose[-1])
    edges = np.linspace(0.0, top if top > 0 else 1.0, n_dvh_bins + 1)
    # V(d) = weight with dose >= d: total minus weight strictly below d
    below = np.searchsorted(sorted_dose, edges, side="left")
    cum0 = np.concatenate([[0.0], cum])
    volume_fraction = (total - cum0[below]) / total
    return DoseStats(
        mean_gy=float(np.sum(values * weights) / weights.sum()), min_gy=float(sorted_dose[0]), max_gy=top,
        median_gy=dx(50.0), d2_gy=dx(2.0), d50_gy=dx(50.0), d98_gy=dx(98.0), v_gy=v_gy,
        dvh_dose_gy=edges, dvh_volume_fraction=volume_fraction, n_voxels=int(values.size), weighting=weighting,
        extra_d_gy={float(p): dx(float(p)) for p in d_percents})


def accumulate_cycles(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Voxel-wise sum of per-cycle dose (or BED) maps already registered to one reference grid."""
    arrays = [np.asarray(getattr(m, "total_gy", m)) for m in maps]
    if not arrays:
        raise InputError("accumulate_cycles: no cycle maps given")
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise GeometryError(f"accumulate_cycles: cycle {i + 1} map shape {a.shape} differs from {shape}; "
                                "register every cycle to the reference grid first")
        if not np.all(np.isfinite(a)):
            raise InputError(f"accumulate_cycles: cycle {i + 1} map has NaN or infinite values")
    total = np.zeros(shape, dtype=np.float64)
    for a in arrays:
        total += a
    return total.astype(np.float32)


def accumulate_structure_values(per_cycle: Sequence[Union[Mapping[str, float], float]],
                                required: Optional[Sequence[str]] = None) -> Union[Dict[str, float], float]:
    """Sum per-structure values (e.g. mean dose in Gy, or BED) over cycles.

    ``per_cycle`` is a list of {structure: value} (or of plain numbers for one structure). A
    structure missing from a cycle is an error (a silently smaller cumulative kidney dose would
    be dangerous); ``required`` names structures that must be present in every cycle.
    """
    if not per_cycle:
        raise InputError("accumulate_structure_values: no cycles given")
    if all(isinstance(v, (int, float, np.floating)) for v in per_cycle):
        values = [float(v) for v in per_cycle]
        if not all(np.isfinite(values)):
            raise InputError("accumulate_structure_values: a cycle value is NaN or infinite")
        return float(sum(values))
    names = set(required or ())
    for c in per_cycle:
        if not isinstance(c, Mapping):
            raise InputError("accumulate_structure_values: expected a list of {structure: value} per cycle")
        names |= set(c.keys())
    result: Dict[str, float] = {}
    for name in sorted(names):
        total = 0.0
        for i, c in enumerate(per_cycle):
            if name not in c:
                raise InputError(f"accumulate_structure_values: structure {name!r} missing in cycle {i + 1}")
            v = float(c[name])
            if not np.isfinite(v):
                raise InputError(f"accumulate_structure_values: {name!r} in cycle {i + 1} is not finite")
            total += v
        result[name] = total
    return result
