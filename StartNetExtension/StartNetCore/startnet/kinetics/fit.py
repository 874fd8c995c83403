"""Structure-level time-activity fit: ``fit_tac`` (weighted least squares, AICc selection).

Rules (each decision is written into the returned :class:`TacFit`):

* Weights: ``sigma_mbq`` given -> absolute standard deviations (per time point: counts, VOI,
  uncorrelated calibration part; ``startnet.kinetics.point_sd``), covariance
  (J^T W J)^-1 x max(1, chi2_red): the data may widen the a-priori SDs, never narrow them
  (EANM, Gear 2018). Not given -> sigma_i = 10 % of |A_i| (floor 1 % of the peak; relative
  weighting) and the covariance is scaled by the reduced chi-square when the fit has degrees of
  freedom, else the assumed 10 % stands as the absolute SD (warning recorded). Whenever the
  residuals set the scale, ``TacFit.tia_dof`` = n - p and ``coverage_factor_k95`` is the
  Student-t factor (with 4 points and a mono-exponential, t(2) = 4.30, not 1.96).
* Physical constraint: the slowest clearance rate k1 >= lambda_phys (decay constant of the
  nuclide). If the constrained optimum sits on that bound, the model is refitted with k1 > 0;
  the unconstrained result is used only when k1 + 2 SD < lambda_phys (the data say clearance is
  slower than decay, e.g. continued uptake), and that is recorded.
* Model selection: AICc = n ln(WRSS/n) + 2p + 2p(p+1)/(n-p-1), p = number of parameters; a
  model is eligible only if n > p + 1 (4 points: mono; 5: + bi_uptake; 6: + bi; 7: + tri).
  WRSS/n is floored at 1e-12 (noise-free data: a perfect fit of several models is then decided
  by the parameter penalty, i.e. the simplest).
* Uptake seen but not modellable: when the observed peak is not the first point, at least two
  points follow it, and no uptake model (bi_uptake, tri) is AICc-eligible and usable, the
  ``hybrid`` model (trapezoid from A(0) = 0 to the peak + fitted mono-exponential tail) is used
  instead of a mono-exponential through the rising points (``startnet.kinetics.piecewise``).
* Fallbacks when nothing is AICc-eligible (n = 2 or 3): mono-exponential if the peak is the
  first point; else trapezoid (uptake assumption ``uptake``, physical-decay tail).
* One point: Madsen STP when a population T_eff is known (argument or table), else Haenscheid.
"""

from __future__ import annotations

import math
from typing import Iterable, List, Optional

import numpy as np

from startnet.errors import FitError, InputError
from startnet.kinetics import stp
from startnet.kinetics.models import MODELS
from startnet.kinetics.piecewise import hybrid_fit, trapezoid_fit
from startnet.kinetics.population import PopulationTable, default_population_table
from startnet.kinetics.tacfit import Candidate, TacFit
from startnet.kinetics.wls import DEFAULT_REL_SD, aicc, fit_constrained, validate_tac
from startnet.physics.lu177 import LU177, Nuclide

DEFAULT_MODELS = ("mono", "bi_uptake", "bi", "tri", "hybrid", "trapezoid", "madsen", "haenscheid")
PIECEWISE_AND_STP = ("hybrid", "trapezoid", "madsen", "haenscheid")
HAENSCHEID_METHOD_REL_SD = 0.10
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
    ``models``: candidates and allowed fallbacks, from ``DEFAULT_MODELS``.
    """
    name = structure or "TAC"
    t, y, s, absolute = validate_tac(times_h, activity_mbq, sigma_mbq, name)
    models = tuple(models)
    unknown = [m for m in models if m not in MODELS and m not in PIECEWISE_AND_STP]
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
        res = fit_constrained(model, t, y, s, lam, absolute, release_constraint_sigmas)
        eligible = n > model.n_params + 1
        value = aicc(res["wrss"], n, model.n_params) if eligible else math.nan
        reason = res["reason"]
        if res["ok"] and not eligible:
            reason = f"fitted, AICc undefined (n={n} <= p+1={model.n_params + 1}); " + reason
        candidates.append(Candidate(m, value, res["ok"], reason, res["tia"] if res["ok"] else math.nan))
        fitted[m] = (res, eligible, value)
    eligible_ok = [(c.aicc, c.model) for c in candidates if c.ok and fitted[c.model][1]]
    warnings: List[str] = []
    ip = int(np.argmax(y))
    uptake_ok = any(m in ("bi_uptake", "tri") for _, m in eligible_ok)
    if ip > 0 and n - ip >= 2 and not uptake_ok and "hybrid" in models:
        reason = (f"activity rises to a peak at {t[ip]:g} h and no uptake model is AICc-eligible with n={n}: "
                  "hybrid (trapezoid from A(0) = 0 to the peak + mono-exponential tail fitted from the peak)")
        try:
            return hybrid_fit(t, y, s, absolute, nuclide=nuclide, structure=name, candidates=candidates,
                              reason=reason, warnings=warnings, release_constraint_sigmas=release_constraint_sigmas)
        except FitError as exc:
            warnings.append(f"hybrid model not usable ({exc}); continuing with the other rules")
    if eligible_ok:
        best_aicc, best = min(eligible_ok)
        others = ", ".join(f"{m} {a:.2f} (dAICc {a - best_aicc:+.2f})" for a, m in sorted(eligible_ok) if m != best)
        reason = f"lowest AICc among eligible models: {best} {best_aicc:.2f}"
        reason += f"; others: {others}" if others else ""
        return _exp_result(MODELS[best], fitted[best][0], candidates, reason, warnings, t, y, s, name, lam)
    if "mono" in fitted and fitted["mono"][0]["ok"] and ip == 0:
        warnings.append(f"no model eligible for AICc with n={n} points; mono-exponential used as documented fallback")
        return _exp_result(MODELS["mono"], fitted["mono"][0], candidates,
                           "fallback: no AICc-eligible model; mono-exponential fit (n small)",
                           warnings, t, y, s, name, lam)
    if "trapezoid" in models:
        why = "activity rises after the first point" if ip > 0 else "no exponential model usable"
        warnings.append(f"{why} and no model is AICc-eligible (n={n}): trapezoid with physical-decay tail used")
        return trapezoid_fit(t, y, s, nuclide=nuclide, uptake=uptake, structure=name, candidates=candidates,
                             reason=f"fallback: {why}, no AICc-eligible model", warnings=warnings)
    raise FitError(f"fit_tac('{name}'): no requested model could be fitted: "
                   + "; ".join(f"{c.model}: {c.reason}" for c in candidates))


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
        amplitudes_mbq=a, rates_per_h=k, tia_dof=res["dof"], variance_scale=res["variance_scale"],
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
