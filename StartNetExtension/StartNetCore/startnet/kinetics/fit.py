"""Structure-level time-activity fit: ``fit_tac`` (weighted least squares, AICc selection).

Rules (each decision is written into the returned :class:`TacFit`):

* Weights: ``sigma_mbq`` given -> absolute standard deviations, covariance = (J^T W J)^-1.
  Not given -> sigma_i = 10 % of |A_i| (floor 1 % of the peak; relative weighting) and the
  covariance is scaled by the reduced chi-square when the fit has degrees of freedom, else
  the assumed 10 % stands as the absolute SD (warning recorded).
* Physical constraint: the slowest clearance rate k1 >= lambda_phys (decay constant of the
  nuclide). If the constrained optimum sits on that bound, the model is refitted with k1 > 0;
  the unconstrained result is used only when k1 + 2 SD < lambda_phys (the data say clearance is
  slower than decay, e.g. continued uptake), and that is recorded.
* Model selection: AICc = n ln(WRSS/n) + 2p + 2p(p+1)/(n-p-1), p = number of parameters; a
  model is eligible only if n > p + 1 (4 points: mono; 5: + bi_uptake; 6: + bi; 7: + tri).
  WRSS/n is floored at 1e-12 (noise-free data: a perfect fit of several models is then decided
  by the parameter penalty, i.e. the simplest). Fallback when no fitted model is eligible
  (n = 2 or 3): the mono-exponential (if requested, converged and physical), else the
  trapezoid. One point: Madsen STP when a population T_eff is known (argument or table), else
  Haenscheid.
* Trapezoid: piecewise linear through the points; before the first point either A(0) = 0
  (``uptake="zero"``, default) or A = A(t1) (``"constant"``); after the last point physical
  decay only. Negative values are clipped to 0 (warning).
"""

from __future__ import annotations

import math
from typing import Iterable, List, Optional, Tuple

import numpy as np
from scipy.optimize import least_squares

from startnet.errors import FitError, InputError
from startnet.kinetics import stp
from startnet.kinetics.models import MODELS, ExpModel
from startnet.kinetics.population import PopulationTable, default_population_table
from startnet.kinetics.tacfit import Candidate, TacFit
from startnet.physics.lu177 import LU177, Nuclide

DEFAULT_MODELS = ("mono", "bi_uptake", "bi", "tri", "trapezoid", "madsen", "haenscheid")
DEFAULT_REL_SD = 0.10
HAENSCHEID_METHOD_REL_SD = 0.10
WRSS_FLOOR_PER_POINT = 1e-12
LN2 = math.log(2.0)


def fit_tac(
    times_h,
    activity_mbq,
    *,
    sigma_mbq=None,
    models: Iterable[str] = DEFAULT_MODELS,
    nuclide: Nuclide = LU177,
    population_t_eff_h: Optional[float] = None,
    population_table: Optional[PopulationTable] = None,
    structure: str = "",
    uptake: str = "zero",
    release_constraint_sigmas: float = 2.0,
    haenscheid_method_rel_sd: float = HAENSCHEID_METHOD_REL_SD,
) -> TacFit:
    """Fit the time-activity curve of one structure and select a model (see module docstring).

    ``times_h``: hours after administration, strictly increasing; ``activity_mbq``: activity
    in the structure (MBq, not decay corrected); ``sigma_mbq``: absolute SD per point or None.
    """
    name = structure or "TAC"
    t, y, s, absolute = _validate(times_h, activity_mbq, sigma_mbq, name)
    models = tuple(models)
    unknown = [m for m in models if m not in MODELS and m not in ("trapezoid", "madsen", "haenscheid")]
    if unknown or not models:
        raise InputError(f"fit_tac('{name}'): unknown model(s) {unknown or models}; expected from {DEFAULT_MODELS}")
    if uptake not in ("zero", "constant"):
        raise InputError(f"fit_tac('{name}'): uptake must be 'zero' or 'constant', got '{uptake}'")
    lam = nuclide.decay_constant_per_h
    if len(t) == 1:
        return _single_point(t, y, s, models, nuclide, population_t_eff_h, population_table, name,
                             haenscheid_method_rel_sd, absolute)
    n = len(t)
    candidates: List[Candidate] = []
    fitted = {}
    for m in models:
        if m not in MODELS:
            continue
        model = MODELS[m]
        if n < model.n_params:
            candidates.append(Candidate(m, math.nan, False, f"not fittable: n={n} < p={model.n_params}"))
            continue
        res = _fit_constrained(model, t, y, s, lam, absolute, release_constraint_sigmas)
        eligible = n > model.n_params + 1
        aicc = _aicc(res["wrss"], n, model.n_params) if eligible else math.nan
        reason = res["reason"]
        if res["ok"] and not eligible:
            reason = f"fitted, AICc undefined (n={n} <= p+1={model.n_params + 1}); " + reason
        candidates.append(Candidate(m, aicc, res["ok"], reason))
        fitted[m] = (res, eligible, aicc)
    eligible_ok = [(c.aicc, c.model) for c in candidates if c.ok and fitted[c.model][1]]
    warnings: List[str] = []
    if eligible_ok:
        best_aicc, best = min(eligible_ok)
        others = ", ".join(f"{m} {a:.2f} (dAICc {a - best_aicc:+.2f})" for a, m in sorted(eligible_ok) if m != best)
        reason = f"lowest AICc among eligible models: {best} {best_aicc:.2f}"
        reason += f"; others: {others}" if others else ""
        return _exp_result(MODELS[best], fitted[best][0], candidates, reason, warnings, t, y, s, name, lam)
    peak_first = int(np.argmax(y)) == 0
    if "mono" in fitted and fitted["mono"][0]["ok"] and peak_first:
        warnings.append(f"no model eligible for AICc with n={n} points; mono-exponential used as documented fallback")
        return _exp_result(MODELS["mono"], fitted["mono"][0], candidates,
                           "fallback: no AICc-eligible model; mono-exponential fit (n small)",
                           warnings, t, y, s, name, lam)
    if "trapezoid" in models:
        why = "activity rises after the first point" if not peak_first else "no exponential model usable"
        warnings.append(f"{why} and no model is AICc-eligible (n={n}): trapezoid with physical-decay tail used")
        return trapezoid_fit(t, y, s, nuclide=nuclide, uptake=uptake, structure=name, candidates=candidates,
                             reason=f"fallback: {why}, no AICc-eligible model", warnings=warnings)
    raise FitError(f"fit_tac('{name}'): no requested model could be fitted: "
                   + "; ".join(f"{c.model}: {c.reason}" for c in candidates))


def _validate(times_h, activity_mbq, sigma_mbq, name) -> Tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    t = np.atleast_1d(np.asarray(times_h, dtype=float))
    y = np.atleast_1d(np.asarray(activity_mbq, dtype=float))
    if t.ndim != 1 or t.shape != y.shape or len(t) == 0:
        raise InputError(f"fit_tac('{name}'): times_h and activity_mbq must be 1-D of equal non-zero length, "
                         f"got shapes {t.shape} and {y.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise InputError(f"fit_tac('{name}'): times_h and activity_mbq must be finite")
    if np.any(t < 0) or np.any(np.diff(t) <= 0):
        raise InputError(f"fit_tac('{name}'): times_h must be >= 0 and strictly increasing, got {t.tolist()}")
    if t[0] == 0 and len(t) == 1:
        raise InputError(f"fit_tac('{name}'): a single time point must be after administration (t > 0)")
    if np.max(y) <= 0:
        raise InputError(f"fit_tac('{name}'): activity_mbq has no positive value: {y.tolist()}")
    if sigma_mbq is None:
        s = DEFAULT_REL_SD * np.maximum(np.abs(y), 0.1 * np.max(np.abs(y)))
        return t, y, s, False
    s = np.broadcast_to(np.asarray(sigma_mbq, dtype=float), y.shape).copy()
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InputError(f"fit_tac('{name}'): sigma_mbq must be finite and > 0, got {s.tolist()}")
    return t, y, s, True


def _aicc(wrss: float, n: int, p: int) -> float:
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
    dof = len(t) - model.n_params
    if not absolute and dof > 0:
        cov = cov * (wrss / dof)
    return cov


def _fit_constrained(model, t, y, s, lam, absolute, nsig) -> dict:
    res = _lsq(model, t, y, s, lam)
    if res is None:
        return {"ok": False, "reason": "optimiser failed from every start"}
    p = res.x
    wrss = 2.0 * res.cost
    cov = _covariance(model, p, t, s, wrss, absolute)
    k1_index = model.fit_names.index("k1")
    reason = "converged"
    constraint_note = ""
    if p[k1_index] <= lam * (1.0 + 1e-6):
        free = _lsq(model, t, y, s, 1e-6)
        released = False
        if free is not None:
            cov_free = _covariance(model, free.x, t, s, 2.0 * free.cost, absolute)
            sd_k = math.sqrt(max(cov_free[k1_index, k1_index], 0.0))
            if free.x[k1_index] + nsig * sd_k < lam and np.all(np.isfinite(cov_free)):
                p, wrss, cov, released = free.x, 2.0 * free.cost, cov_free, True
                constraint_note = (f"constraint k >= lambda_phys released: data give k = {p[k1_index]:.3g} "
                                   f"+/- {sd_k:.2g} 1/h < lambda_phys {lam:.4g} 1/h by > {nsig:g} SD")
        if not released:
            constraint_note = f"constraint active: slowest clearance held at lambda_phys = {lam:.4g} 1/h"
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
    return {"ok": ok, "p": p, "cov": cov, "wrss": wrss, "tia": tia, "tia_sd": math.sqrt(max(var, 0.0)),
            "reason": reason, "constraint_note": constraint_note}


def _dominant_half_life(a: np.ndarray, k: np.ndarray) -> float:
    contrib = np.where(a > 0, a / k, -np.inf)
    return LN2 / float(k[int(np.argmax(contrib))])


def _exp_result(model, res, candidates, reason, warnings, t, y, s, name, lam) -> TacFit:
    p = res["p"]
    if res["constraint_note"]:
        warnings.append(res["constraint_note"])
    if not np.isfinite(res["cov"]).all():
        warnings.append("parameter covariance not finite (parameters not identifiable)")
    nat = model.natural(p)
    cov_nat = model.natural_matrix @ res["cov"] @ model.natural_matrix.T
    a, k = model.amplitudes(p), model.rates(p)
    ip = int(np.argmax(y))
    if model.name in ("mono", "bi") and ip > 0:
        warnings.append(f"activity rises from {t[0]:g} h to the peak at {t[ip]:g} h but the selected model "
                        f"'{model.name}' has no uptake phase (uptake models need more points for AICc)")
    if y[-1] >= np.max(y) and len(y) > 1:
        warnings.append("activity highest at the last time point: the tail is extrapolated from rising data")
    aicc = next((c.aicc for c in candidates if c.model == model.name), math.nan)
    return TacFit(
        structure=name, model=model.name, params=nat, param_names=model.natural_names, covariance=cov_nat,
        tia_mbq_h=res["tia"], tia_sd_mbq_h=res["tia_sd"], effective_half_life_h=_dominant_half_life(a, k),
        effective_half_life_definition="ln2/k of the dominant clearance phase (largest a_i/k_i)",
        aicc=aicc, candidates=candidates, selection_reason=reason, warnings=warnings,
        times_h=t, activity_mbq=y, sigma_mbq=s, physical_decay_constant_per_h=lam,
        amplitudes_mbq=a, rates_per_h=k,
    )


def trapezoid_fit(times_h, activity_mbq, sigma_mbq=None, *, nuclide: Nuclide = LU177, uptake: str = "zero",
                  structure: str = "", candidates=None, reason: str = "trapezoid requested",
                  warnings: Optional[List[str]] = None) -> TacFit:
    """Trapezoid TIA with the explicit uptake assumption and a physical-decay tail."""
    name = structure or "TAC"
    t, y, s, _ = _validate(times_h, activity_mbq, sigma_mbq, name)
    warnings = list(warnings or [])
    if np.any(y < 0):
        warnings.append("negative activity values clipped to 0 in the trapezoid")
    yc = np.clip(y, 0.0, None)
    lam = nuclide.decay_constant_per_h
    if t[0] > 0:
        nodes_t = np.concatenate([[0.0], t])
        nodes_a = np.concatenate([[0.0 if uptake == "zero" else yc[0]], yc])
    else:
        nodes_t, nodes_a = t.copy(), yc.copy()
    # TIA = sum w_i A_i: trapezoid weights on the measured points plus the 1/lambda tail.
    w = np.zeros(len(t))
    dt = np.diff(t)
    w[:-1] += dt / 2.0
    w[1:] += dt / 2.0
    if t[0] > 0:
        w[0] += t[0] / 2.0 if uptake == "zero" else t[0]
    w[-1] += 1.0 / lam
    tia = float(w @ yc)
    tia_sd = float(math.sqrt(np.sum((w * s) ** 2)))
    peak = float(np.max(yc))
    t_eff = tia * LN2 / peak
    uptake_text = ("A(0) = 0, linear rise to the first point" if uptake == "zero"
                   else "activity constant at A(t1) before the first point")
    return TacFit(
        structure=name, model="trapezoid", params={"tail_rate_per_h": lam}, param_names=("tail_rate_per_h",),
        covariance=np.zeros((1, 1)), tia_mbq_h=tia, tia_sd_mbq_h=tia_sd, effective_half_life_h=t_eff,
        effective_half_life_definition="TIA * ln2 / A_peak (trapezoid)", aicc=math.nan,
        candidates=list(candidates or []), selection_reason=reason, warnings=warnings,
        times_h=t, activity_mbq=y, sigma_mbq=s, uptake_assumption=uptake_text,
        physical_decay_constant_per_h=lam, trapezoid_nodes=(nodes_t, nodes_a),
    )


def _single_point(t, y, s, models, nuclide, population_t_eff_h, table, name, h_rel_sd, absolute) -> TacFit:
    t1, a1, s1 = float(t[0]), float(y[0]), float(s[0])
    warnings = [] if absolute else [f"no sigma given: activity SD assumed {DEFAULT_REL_SD:.0%}"]
    entry_source, t_eff, t_eff_rel = None, None, 0.0
    if population_t_eff_h is not None:
        t_eff, entry_source, t_eff_rel = float(population_t_eff_h), "population_t_eff_h argument (caller)", 0.0
    elif "madsen" in models:
        entry = (table or default_population_table()).lookup(name)
        if entry is not None:
            t_eff, entry_source, t_eff_rel = entry.t_eff_h, entry.source, entry.rel_sd
    rel_a = s1 / a1 if a1 > 0 else math.inf
    if "madsen" in models and t_eff is not None:
        tia = stp.madsen_tia(a1, t1, t_eff)
        rel_m = stp.madsen_rel_sd_from_teff(t1, t_eff, t_eff_rel)
        k = LN2 / t_eff
        model, reason = "madsen", (f"one time point ({t1:g} h): Madsen 2018 with population T_eff {t_eff:g} h "
                                   f"(+/- {t_eff_rel:.0%}; source: {entry_source})")
    elif "haenscheid" in models:
        tia = stp.haenscheid_tia(a1, t1)
        rel_m = h_rel_sd
        k = LN2 / t1
        model, reason = "haenscheid", (f"one time point ({t1:g} h): Haenscheid 2018 (T_eff assumed = t); "
                                       "no population T_eff for this structure")
        warnings.append(f"Haenscheid method SD {h_rel_sd:.0%} is an assumption (ratio 2x 2^-x, x = t/T_eff)")
    else:
        raise FitError(f"fit_tac('{name}'): one time point needs 'madsen' or 'haenscheid' in models")
    a0 = a1 * math.exp(k * t1)
    sd = tia * math.sqrt(rel_a**2 + rel_m**2)
    # covariance of (a0, k) from var(A) and var(k) (population T_eff for Madsen; Haenscheid's
    # method SD is in tia_sd_mbq_h only); a0 = A exp(k t).
    var_k = (k * t_eff_rel) ** 2 if model == "madsen" else 0.0
    jac = np.array([[math.exp(k * t1), t1 * a0], [0.0, 1.0]])
    cov = jac @ np.diag([s1**2, var_k]) @ jac.T
    return TacFit(
        structure=name, model=model, params={"a_mbq": a0, "k_per_h": k, "time_h": t1}, param_names=("a_mbq", "k_per_h"),
        covariance=cov, tia_mbq_h=tia, tia_sd_mbq_h=sd, effective_half_life_h=LN2 / k,
        effective_half_life_definition="assumed single-time-point T_eff", aicc=math.nan,
        candidates=[Candidate(model, math.nan, True, reason)], selection_reason=reason, warnings=warnings,
        times_h=t, activity_mbq=y, sigma_mbq=s, physical_decay_constant_per_h=nuclide.decay_constant_per_h,
        amplitudes_mbq=np.array([a0]), rates_per_h=np.array([k]),
    )
