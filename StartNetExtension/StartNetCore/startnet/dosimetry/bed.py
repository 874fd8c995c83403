"""Biologically effective dose (BED) and EQD2 for radionuclide therapy (REFERENCE.md section 3).

Linear-quadratic model with incomplete mono-exponential repair (Dale; Barone 2005; Wessels
2008; Baechler 2008): ``BED = D (1 + G D / (alpha/beta))`` with repair rate ``mu = ln2 / T_rep``.
For a dose rate ``Ddot(t) = sum_i a_i exp(-k_i t)`` (uptake phases have a_i < 0):

    G D^2 = 2 sum_i sum_j a_i a_j / ((k_i + k_j)(k_i + mu)),   D = sum_i a_i / k_i,

which for instant uptake and one exponential reduces to ``G = k / (k + mu)``. G depends only on
the *shape* of the dose rate, so the activity exponentials of a TAC fit can be used directly
(dose rate proportional to activity for the self-dose of a structure). Curves that are not sums
of exponentials (trapezoid and hybrid fits) use a numerical G (``g_factor_numeric``, exact recursion for
piecewise-linear dose rates). Defaults: kidney alpha/beta = 2.6 Gy, T_rep = 2.8 h (some authors
use 1.5 h; both are parameters). ``EQD2 = BED / (1 + 2 / (alpha/beta))``. Cycles with complete
repair between them add: ``BED_total = sum_c BED_c`` (``sum_cycles``).

Voxel BED maps: ``bed_map(dose_gy, g_map, alpha_beta_gy)`` with a G map either from each
voxel's own clearance rate (``g_map_from_rates``: instant uptake G = k/(k+mu); an uptake phase
lowers G, so this is an upper bound, i.e. conservative for kidney BED) or from each structure's
fitted time course (``g_map_from_structures``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Tuple, Union

import numpy as np
from scipy.integrate import trapezoid
from scipy.signal import lfilter

from startnet.errors import GeometryError, InputError
from startnet.physics.lu177 import LU177

KIDNEY_ALPHA_BETA_GY = 2.6
KIDNEY_T_REP_H = 2.8
LN2 = math.log(2.0)

Exponentials = Sequence[Tuple[float, float]]


def repair_rate_per_h(t_rep_h: float) -> float:
    if not (t_rep_h > 0.0):
        raise InputError(f"BED: repair half-time T_rep must be > 0 h, got {t_rep_h}")
    return LN2 / t_rep_h


def g_factor(exponentials: Exponentials, t_rep_h: float = KIDNEY_T_REP_H) -> float:
    """Lea-Catcheside G factor of ``Ddot(t) = sum a_i exp(-k_i t)`` (general formula)."""
    ex = np.asarray(exponentials, dtype=float).reshape(-1, 2)
    a, k = ex[:, 0], ex[:, 1]
    if len(a) == 0 or np.any(~np.isfinite(ex)) or np.any(k <= 0):
        raise InputError(f"g_factor: expected (a_i, k_i) pairs with finite a_i and k_i > 0, got {ex.tolist()}")
    mu = repair_rate_per_h(t_rep_h)
    dose = float(np.sum(a / k))
    if not (dose > 0):
        raise InputError(f"g_factor: the dose-rate curve integrates to {dose} (must be > 0)")
    gd2 = 2.0 * float(np.sum(np.outer(a, a) / (np.add.outer(k, k) * (k[:, None] + mu))))
    return gd2 / dose**2


def g_factor_mono(t_eff_h: float, t_rep_h: float = KIDNEY_T_REP_H) -> float:
    """Instant uptake, mono-exponential: G = T_rep / (T_rep + T_eff)."""
    if not (t_eff_h > 0):
        raise InputError(f"g_factor_mono: effective half-life must be > 0 h, got {t_eff_h}")
    return t_rep_h / (t_rep_h + t_eff_h)


def _numeric_parts(rate: Callable[[np.ndarray], np.ndarray], t_end_h: float, mu: float, dt_h: float):
    """(dose, G D^2, Ddot(t_end), I(t_end)) of ``rate`` on [0, t_end_h] (see ``g_factor_numeric``)."""
    n = max(int(math.ceil(t_end_h / dt_h)), 2)
    t = np.linspace(0.0, t_end_h, n + 1)
    h = t[1] - t[0]
    d = np.asarray(rate(t), dtype=float)
    r = math.exp(-mu * h)
    e0 = (1.0 - r) / mu
    e1 = h / mu - (1.0 - r) / mu**2
    x = d[:-1] * e0 + (d[1:] - d[:-1]) / h * e1
    inner = np.concatenate([[0.0], lfilter([1.0], [1.0, -r], x)])
    return trapezoid(d, t), 2.0 * trapezoid(d * inner, t), float(d[-1]), float(inner[-1])


def g_factor_numeric(rate: Callable[[np.ndarray], np.ndarray], t_end_h: float,
                     t_rep_h: float = KIDNEY_T_REP_H, dt_h: float = 0.05) -> float:
    """G of an arbitrary dose-rate curve on [0, t_end_h] (rate ~ 0 after ``t_end_h``).

    The inner integral I(t) = int_0^t Ddot(s) exp(-mu (t - s)) ds is advanced exactly for a
    piecewise-linear Ddot on a uniform grid; the outer integral uses the trapezoid rule.
    """
    mu = repair_rate_per_h(t_rep_h)
    dose, gd2, _, _ = _numeric_parts(rate, t_end_h, mu, dt_h)
    if not (dose > 0):
        raise InputError("g_factor_numeric: the dose-rate curve integrates to <= 0")
    return float(gd2 / dose**2)


def g_factor_for_fit(fit, t_rep_h: float = KIDNEY_T_REP_H, dt_h: float = 0.05) -> float:
    """G of a :class:`startnet.kinetics.TacFit` (closed form, or numerical for a trapezoid/hybrid).

    Piecewise fits: numerically on a grid over the data only, [0, last scan] (its size is bounded
    by the scan times, never by the fitted rate), then the exponential tail a e^{-k t} after the
    last scan in closed form: with T the last scan, D_T = Ddot(T) and I_T the repair-weighted
    integral at T, int_T^inf Ddot I dt = D_T I_T / (k + mu) + D_T^2 / (2 k (k + mu)), dose D_T / k.
    """
    if fit.is_exponential:
        return g_factor(fit.dose_rate_exponentials(), t_rep_h)
    mu = repair_rate_per_h(t_rep_h)
    k = float(fit.tail_exponential[1])
    if not (k > 0) or not math.isfinite(k):
        raise InputError(f"g_factor_for_fit('{fit.structure}'): tail rate must be > 0 1/h, got {k}")
    t_end = float(max(fit.trapezoid_nodes[0][-1], np.max(fit.times_h)))
    dose, gd2, d_end, inner_end = _numeric_parts(fit.evaluate, t_end, mu, dt_h)
    dose += d_end / k
    gd2 += 2.0 * (d_end * inner_end / (k + mu) + d_end * d_end / (2.0 * k * (k + mu)))
    if not (dose > 0):
        raise InputError(f"g_factor_for_fit('{fit.structure}'): the dose-rate curve integrates to <= 0")
    return float(gd2 / dose**2)


def _g_from(kinetics, t_rep_h: float) -> float:
    if isinstance(kinetics, (int, float)):
        return g_factor_mono(float(kinetics), t_rep_h)
    if hasattr(kinetics, "tia_mbq_h"):
        return g_factor_for_fit(kinetics, t_rep_h)
    return g_factor(kinetics, t_rep_h)


def bed_from_dose(dose_gy, exponentials_or_teff, alpha_beta_gy: float = KIDNEY_ALPHA_BETA_GY,
                  t_rep_h: float = KIDNEY_T_REP_H):
    """BED (Gy) of absorbed dose ``dose_gy`` (scalar or array) delivered with the given kinetics.

    ``exponentials_or_teff``: (a_i, k_i) pairs of the dose-rate shape, a TacFit, or an
    effective half-life in h (instant uptake, mono-exponential).
    """
    _check_alpha_beta(alpha_beta_gy)
    g = _g_from(exponentials_or_teff, t_rep_h)
    dose = np.asarray(dose_gy, dtype=float) if not np.isscalar(dose_gy) else float(dose_gy)
    return dose * (1.0 + g * dose / alpha_beta_gy)


def eqd2(bed_gy, alpha_beta_gy: float = KIDNEY_ALPHA_BETA_GY):
    """Equivalent dose in 2-Gy fractions: EQD2 = BED / (1 + 2 / (alpha/beta))."""
    _check_alpha_beta(alpha_beta_gy)
    return bed_gy / (1.0 + 2.0 / alpha_beta_gy)


def _check_alpha_beta(alpha_beta_gy: float) -> None:
    if not (alpha_beta_gy > 0):
        raise InputError(f"BED: alpha/beta must be > 0 Gy, got {alpha_beta_gy}")


@dataclass
class BedResult:
    structure: str
    dose_gy: float
    bed_gy: float
    eqd2_gy: float
    g_factor: float
    alpha_beta_gy: float
    t_rep_h: float
    kinetics: str


def structure_bed(structure: str, dose_gy: float, kinetics, alpha_beta_gy: float = KIDNEY_ALPHA_BETA_GY,
                  t_rep_h: float = KIDNEY_T_REP_H) -> BedResult:
    """BED and EQD2 of one structure; ``kinetics`` as in :func:`bed_from_dose`."""
    if not (dose_gy >= 0) or not math.isfinite(dose_gy):
        raise InputError(f"structure_bed('{structure}'): dose must be finite and >= 0 Gy, got {dose_gy}")
    g = _g_from(kinetics, t_rep_h)
    bed = dose_gy * (1.0 + g * dose_gy / alpha_beta_gy)
    if isinstance(kinetics, (int, float)):
        text = f"mono-exponential, instant uptake, T_eff {float(kinetics):g} h"
    elif hasattr(kinetics, "model"):
        text = f"TAC fit '{kinetics.model}'"
    else:
        text = f"{len(kinetics)} exponential terms"
    return BedResult(structure, float(dose_gy), float(bed), float(eqd2(bed, alpha_beta_gy)), g,
                     alpha_beta_gy, t_rep_h, text)


def g_map_from_rates(k_per_h: np.ndarray, t_rep_h=KIDNEY_T_REP_H,
                     min_rate_per_h: float = LU177.decay_constant_per_h) -> np.ndarray:
    """Per-voxel G = k / (k + mu) (instant uptake; 0 where k <= 0). float32 map.

    ``t_rep_h``: one repair half-time, or a map of them (each voxel its structure's). Rates between
    0 and ``min_rate_per_h`` (the nuclide's physical decay constant: nothing clears slower than it
    decays) are raised to it; G grows with k, so this never lowers a BED.
    """
    k = np.asarray(k_per_h, dtype=np.float32)
    if np.ndim(t_rep_h) == 0:
        mu = np.float32(repair_rate_per_h(float(t_rep_h)))
    else:
        t_rep = np.asarray(t_rep_h, dtype=np.float64)
        if not np.all(t_rep > 0.0):
            raise InputError("BED: repair half-time T_rep must be > 0 h in every voxel")
        mu = (LN2 / t_rep).astype(np.float32)
    g = np.zeros_like(k)
    pos = k > 0
    kk = np.maximum(k[pos], np.float32(min_rate_per_h))
    g[pos] = kk / (kk + (mu if np.ndim(mu) == 0 else mu[pos]))
    return g


def g_map_from_structures(labels: np.ndarray, kinetics_by_label: Mapping[int, object],
                          t_rep_h: float = KIDNEY_T_REP_H, background_g: float = 0.0) -> np.ndarray:
    """Per-voxel G from each structure's time course (label -> exponentials, TacFit or T_eff)."""
    labels = np.asarray(labels)
    g = np.full(labels.shape, background_g, dtype=np.float32)
    for label, kin in kinetics_by_label.items():
        g[labels == label] = _g_from(kin, t_rep_h)
    return g


def bed_map(dose_gy: np.ndarray, g_map: Union[np.ndarray, float],
            alpha_beta_gy: float = KIDNEY_ALPHA_BETA_GY) -> np.ndarray:
    """Voxel BED map (Gy, float32): D (1 + G D / (alpha/beta))."""
    _check_alpha_beta(alpha_beta_gy)
    d = np.asarray(dose_gy, dtype=np.float32)
    g = np.asarray(g_map, dtype=np.float32)
    if g.ndim and g.shape != d.shape:
        raise GeometryError(f"bed_map: G map shape {g.shape} differs from the dose map {d.shape}")
    return d * (np.float32(1.0) + g * d / np.float32(alpha_beta_gy))


def sum_cycles(values: Sequence):
    """Sum BED (or dose) of cycles given complete repair between cycles.

    ``values``: floats (structure values) or arrays on one registered grid (voxel maps).
    """
    values = list(values)
    if not values:
        raise InputError("sum_cycles: no cycle values given")
    if all(np.isscalar(v) for v in values):
        total = float(np.sum(values))
        if not math.isfinite(total):
            raise InputError(f"sum_cycles: non-finite cycle value in {values}")
        return total
    arrays = [np.asarray(v) for v in values]
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise GeometryError(f"sum_cycles: cycle {i + 1} map has shape {a.shape}, expected {shape} "
                                "(register every cycle to the reference grid first)")
    total = np.zeros(shape, dtype=np.float64)
    for a in arrays:
        total += a
    return total.astype(np.float32)
