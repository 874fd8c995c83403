"""Weighted least-squares machinery shared by the structure-level fits (``fit_tac``, ``hybrid``).

Input validation, AICc, start values, bounded trust-region fits with the physical constraint on
the slowest clearance rate, and covariance (see ``startnet.kinetics.fit`` for the rules).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
from scipy.optimize import least_squares

from startnet.errors import InputError
from startnet.kinetics.models import ExpModel

DEFAULT_REL_SD = 0.10
WRSS_FLOOR_PER_POINT = 1e-12


def validate_tac(times_h, activity_mbq, sigma_mbq, name) -> Tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    t = np.atleast_1d(np.asarray(times_h, dtype=float))
    y = np.atleast_1d(np.asarray(activity_mbq, dtype=float))
    if t.ndim != 1 or t.shape != y.shape or len(t) == 0:
        raise InputError(f"TAC of '{name}': times_h and activity_mbq must be 1-D of equal non-zero length, "
                         f"got shapes {t.shape} and {y.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise InputError(f"TAC of '{name}': times_h and activity_mbq must be finite")
    if np.any(t < 0) or np.any(np.diff(t) <= 0):
        raise InputError(f"TAC of '{name}': times_h must be >= 0 and strictly increasing, got {t.tolist()}")
    if t[0] == 0 and len(t) == 1:
        raise InputError(f"TAC of '{name}': a single time point must be after administration (t > 0)")
    if np.max(y) <= 0:
        raise InputError(f"TAC of '{name}': activity_mbq has no positive value: {y.tolist()}")
    if sigma_mbq is None:
        s = DEFAULT_REL_SD * np.maximum(np.abs(y), 0.1 * np.max(np.abs(y)))
        return t, y, s, False
    s = np.broadcast_to(np.asarray(sigma_mbq, dtype=float), y.shape).copy()
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InputError(f"TAC of '{name}': sigma_mbq must be finite and > 0, got {s.tolist()}")
    return t, y, s, True


def aicc(wrss: float, n: int, p: int) -> float:
    per_point = max(wrss / n, WRSS_FLOOR_PER_POINT)
    return n * math.log(per_point) + 2 * p + 2 * p * (p + 1) / (n - p - 1)


def _loglinear(t: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """(a, k) of a weighted log-linear fit to the positive points (weights y^2)."""
    pos = y > 0
    if np.count_nonzero(pos) < 2:
        return float(np.max(y)), 0.0
    tt, ly, w = t[pos], np.log(y[pos]), y[pos] ** 2
    slope, intercept = np.polyfit(tt, ly, 1, w=np.sqrt(w))
    return float(math.exp(intercept)), float(-slope)


def _starts(model: ExpModel, t: np.ndarray, y: np.ndarray, kmin: float) -> List[np.ndarray]:
    ip = int(np.argmax(y))
    a_all, k_all = _loglinear(t, y)
    a_late, k_late = _loglinear(t[ip:], y[ip:]) if len(t) - ip >= 2 else (a_all, k_all)
    k_late = max(k_late, kmin * 1.5)
    k_all = max(k_all, kmin * 1.5)
    t_first = max(t[t > 0][0] if np.any(t > 0) else 1.0, 0.1)
    fast = [0.3 / t_first, 3.0 / t_first, 0.05]
    if model.name == "mono":
        return [np.array([a_all, k_all]), np.array([a_late, k_late])]
    if model.name == "bi_uptake":
        return [np.array([a_late, k_late, d]) for d in fast]
    if model.rate_offset is not None:  # uptake with physical clearance: p = (a, dk)
        starts = []
        for d in fast + [3.0 / t[-1], 1.0 / t[-1], 0.3 / t[-1]]:
            shape = model.evaluate(np.array([1.0, d]), t)
            if np.max(shape) > 0:
                starts.append(np.array([float(np.max(y)) / float(np.max(shape)), d]))
        return starts
    a_fast = max(float(y[0]) - a_late * math.exp(-k_late * t[0]), 0.05 * a_late)
    if model.name == "bi":
        return [np.array([a_late, k_late, a_fast * math.exp(d * t[0]), d]) for d in fast[:2]]
    return [np.array([a_late, k_late, f * a_late, d2, d3]) for f in (0.3, 1.0) for d2 in fast[:2] for d3 in (0.5, 5.0)]


def _lsq(model: ExpModel, t, y, s, kmin):
    lb, ub = model.lower_bounds(kmin), model.upper_bounds()
    best = None
    for x0 in _starts(model, t, y, kmin):
        x0 = np.clip(x0, lb + 1e-12 * np.maximum(1.0, np.abs(lb)), np.minimum(ub * 0.999, 1e12))
        try:
            res = least_squares(lambda p: (model.evaluate(p, t) - y) / s, x0,
                                jac=lambda p: model.jacobian(p, t) / s[:, None], bounds=(lb, ub),
                                method="trf", x_scale="jac", ftol=1e-13, xtol=1e-13, gtol=1e-13, max_nfev=400)
        except (ValueError, FloatingPointError):
            continue
        if np.all(np.isfinite(res.x)) and (best is None or res.cost < best.cost):
            best = res
    return best


def variance_scale(wrss: float, dof: int, absolute: bool) -> Tuple[float, float]:
    """(factor on the linearised covariance, degrees of freedom of the resulting SD).

    Absolute point SDs: max(1, chi2_red). A reduced chi-square <= 1 keeps the a-priori SDs
    (type B, infinite degrees of freedom); above 1 the data scatter more than the SDs claim and
    the residuals set the scale (type A, n - p degrees of freedom: use a Student-t coverage
    factor). Relative weights (no SDs): chi2_red whatever its value (n - p degrees of freedom).
    No degrees of freedom: factor 1 and the assumed SDs stand (infinite).
    """
    if dof <= 0:
        return 1.0, math.inf
    chi2_red = wrss / dof
    if absolute and chi2_red <= 1.0:
        return 1.0, math.inf
    return chi2_red, float(dof)


def _covariance(model, p, t, s, wrss, absolute) -> np.ndarray:
    j = model.jacobian(p, t) / s[:, None]
    # SVD of the weighted Jacobian: rank deficiency (an unidentifiable phase) -> infinite covariance.
    try:
        _, sv, vt = np.linalg.svd(j, full_matrices=False)
    except np.linalg.LinAlgError:
        return np.full((model.n_params, model.n_params), np.inf)
    if len(sv) < model.n_params or sv[-1] <= 1e-10 * sv[0]:
        return np.full((model.n_params, model.n_params), np.inf)
    cov = (vt.T / sv**2) @ vt
    return cov * variance_scale(wrss, len(t) - model.n_params, absolute)[0]


def fit_constrained(model, t, y, s, lam, absolute, nsig) -> dict:
    """Fit ``model`` with its slowest clearance rate k1 >= ``lam`` (never released).

    When the optimum sits on the bound, the model is refitted with k1 free only to *test* the
    data: if the free k1 + ``nsig`` SD < ``lam`` the data decay slower than physical decay
    (continued uptake, a plateau) and ``slower_than_physical`` is set. The returned parameters
    stay the constrained ones: an exponential slower than physical decay is never extrapolated
    beyond the last point (the callers then use the data with a physical-decay tail instead).
    """
    res = _lsq(model, t, y, s, lam)
    if res is None:
        return {"ok": False, "reason": "optimiser failed from every start", "slower_than_physical": False,
                "constraint_note": ""}
    p = res.x
    wrss = 2.0 * res.cost
    cov = _covariance(model, p, t, s, wrss, absolute)
    reason = "converged"
    constraint_note = ""
    slower = False
    k1_index = model.fit_names.index("k1") if "k1" in model.fit_names else None  # else rates fixed >= lambda
    if k1_index is not None and p[k1_index] <= lam * (1.0 + 1e-6):
        constraint_note = f"constraint active: slowest clearance held at lambda_phys = {lam:.4g} 1/h"
        free = _lsq(model, t, y, s, 1e-6)
        if free is not None:
            cov_free = _covariance(model, free.x, t, s, 2.0 * free.cost, absolute)
            sd_k = math.sqrt(max(cov_free[k1_index, k1_index], 0.0))
            if free.x[k1_index] + nsig * sd_k < lam and np.all(np.isfinite(cov_free)):
                slower = True
                constraint_note += (f"; the data decay slower than physical decay (free fit k = "
                                    f"{free.x[k1_index]:.3g} +/- {sd_k:.2g} 1/h, > {nsig:g} SD below lambda_phys): "
                                    "not extrapolated slower than physical decay")
    tia = model.tia(p)
    g = model.tia_gradient(p)
    with np.errstate(invalid="ignore"):
        var = float(g @ cov @ g)
    ok = bool(res.success) and math.isfinite(tia) and tia > 0 and math.isfinite(var) and var >= 0
    if not np.all(np.isfinite(cov)):
        reason = "parameters not identifiable from these points (singular Jacobian)"
    elif not ok:
        reason = f"unusable fit (optimiser success={res.success}, TIA={tia:.4g} MBq.h)"
    if constraint_note:
        reason = reason + "; " + constraint_note
    scale, dof = variance_scale(wrss, len(t) - model.n_params, absolute)
    return {"ok": ok, "p": p, "cov": cov, "wrss": wrss, "tia": tia, "tia_sd": math.sqrt(max(var, 0.0)),
            "reason": reason, "constraint_note": constraint_note, "slower_than_physical": slower,
            "variance_scale": scale, "dof": dof}
