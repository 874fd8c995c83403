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
  nuclide), always. Nothing is extrapolated beyond the last point slower than physical decay.
  If the constrained optimum sits on that bound, a free refit (k1 > 0) tests the data: when
  k1 + 2 SD < lambda_phys the data decay slower than physical decay (continued uptake, a
  plateau) and the selected model is replaced by the trapezoid through the points with a
  physical-decay tail after the last point (recorded in the selection reason).
* Model selection: AICc = n ln(WRSS/n) + 2p + 2p(p+1)/(n-p-1) (see ``AICC_CONVENTION``: p
  counts the fitted model parameters, amplitudes and rates, not the residual variance); a
  model is eligible only if n > p + 1 (4 points: mono; 5: + bi_uptake; 6: + bi; 7: + tri).
  WRSS/n is floored at 1e-12 (noise-free data: a perfect fit of several models is then decided
  by the parameter penalty, i.e. the simplest).
* Still rising at the last scan (the highest point is the last one, n >= 2): a model that falls
  after the last point faster than physical decay is not used (a mono-exponential through
  rising points integrated a third of the data's area). An uptake model is used: AICc-eligible
  bi_uptake/tri (slowest clearance >= lambda_phys), else ``uptake_physical_clearance``
  a (e^{-lambda t} - e^{-(lambda + dk) t}) (the clearance after a peak not yet seen is held at
  physical decay; >= 1 degree of freedom), the first whose TIA is at least that of the trapezoid
  through the points + physical-decay tail from the last one; otherwise that trapezoid.
* Uptake seen but not modellable: when the observed peak is not the first point, at least two
  points follow it, and no uptake model (bi_uptake, tri) is AICc-eligible and usable, the
  ``hybrid`` model (trapezoid from A(0) = 0 to the peak + fitted mono-exponential tail) is used
  instead of a mono-exponential through the rising points (``startnet.kinetics.piecewise``);
  if the points from the peak on decay no faster than physical decay, the trapezoid with a
  physical-decay tail instead.
* Fallbacks when nothing is AICc-eligible (n = 2 or 3): mono-exponential if the peak is the
  first point; else trapezoid (uptake assumption ``uptake``, physical-decay tail).
* One point: Madsen STP when a population T_eff is known (argument or table), else Haenscheid.
  A Haenscheid fit (Madsen not requested) still records the population T_eff when one is known
  (``bed_t_eff_h``): the BED G factor uses it instead of Haenscheid's implicit T_eff = t.
"""

from __future__ import annotations

import math
from typing import Iterable, List, Optional

import numpy as np

from startnet.errors import FitError, InputError
from startnet.kinetics import stp
from startnet.kinetics.models import MODELS, uptake_physical_clearance
from startnet.kinetics.piecewise import SlowTailError, hybrid_fit, trapezoid_fit
from startnet.kinetics.population import PopulationTable, default_population_table
from startnet.kinetics.tacfit import Candidate, TacFit
from startnet.kinetics.wls import DEFAULT_REL_SD, aicc, fit_constrained, validate_tac
from startnet.physics.lu177 import LU177, Nuclide

DEFAULT_MODELS = ("mono", "bi_uptake", "bi", "tri", "hybrid", "trapezoid", "madsen", "haenscheid")
PIECEWISE_AND_STP = ("hybrid", "trapezoid", "madsen", "haenscheid")
HAENSCHEID_METHOD_REL_SD = 0.10
LN2 = math.log(2.0)
AICC_CONVENTION = ("AICc = n ln(WRSS/n) + 2p + 2p(p+1)/(n-p-1) with p = number of fitted model parameters "
                   "(amplitudes and rates; the residual variance is not counted), WRSS with the point weights "
                   "1/sigma^2; a model is eligible only when n > p + 1")
UPTAKE_MODELS = ("bi_uptake", "tri")


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
    if ip == n - 1 and "trapezoid" in models:
        return _rising_at_last_point(t, y, s, fitted, candidates, warnings, nuclide, uptake, name, absolute,
                                     release_constraint_sigmas)
    uptake_ok = any(m in UPTAKE_MODELS for _, m in eligible_ok)
    if ip > 0 and n - ip >= 2 and not uptake_ok and "hybrid" in models:
        reason = (f"activity rises to a peak at {t[ip]:g} h and no uptake model is AICc-eligible with n={n}: "
                  "hybrid (trapezoid from A(0) = 0 to the peak + mono-exponential tail fitted from the peak)")
        try:
            return hybrid_fit(t, y, s, absolute, nuclide=nuclide, structure=name, candidates=candidates,
                              reason=reason, warnings=warnings, release_constraint_sigmas=release_constraint_sigmas)
        except SlowTailError as exc:
            if "trapezoid" in models:
                return _slow_data_trapezoid(t, y, s, candidates, warnings, nuclide, uptake, name, str(exc))
            warnings.append(f"hybrid model not usable ({exc}); continuing with the other rules")
        except FitError as exc:
            warnings.append(f"hybrid model not usable ({exc}); continuing with the other rules")
    if eligible_ok:
        best_aicc, best = min(eligible_ok)
        others = ", ".join(f"{m} {a:.2f} (dAICc {a - best_aicc:+.2f})" for a, m in sorted(eligible_ok) if m != best)
        reason = f"lowest AICc among eligible models: {best} {best_aicc:.2f}"
        reason += f"; others: {others}" if others else ""
        if fitted[best][0]["slower_than_physical"] and "trapezoid" in models:
            return _slow_data_trapezoid(t, y, s, candidates, warnings, nuclide, uptake, name,
                                        f"{reason}; {best}: {fitted[best][0]['constraint_note']}")
        return _exp_result(MODELS[best], fitted[best][0], candidates, reason, warnings, t, y, s, name, lam)
    if "mono" in fitted and fitted["mono"][0]["ok"] and ip == 0:
        if fitted["mono"][0]["slower_than_physical"] and "trapezoid" in models:
            return _slow_data_trapezoid(t, y, s, candidates, warnings, nuclide, uptake, name,
                                        f"mono: {fitted['mono'][0]['constraint_note']}")
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


def _slow_data_trapezoid(t, y, s, candidates, warnings, nuclide, uptake, name, why) -> TacFit:
    """The data decay slower than physical decay: the points as measured + physical decay after the last."""
    reason = (f"the data decay no faster than physical decay ({why}): trapezoid through the points with a "
              "physical-decay tail after the last point (never extrapolated slower than physical decay)")
    warnings.append("clearance slower than physical decay in the data: trapezoid with physical-decay tail used")
    return trapezoid_fit(t, y, s, nuclide=nuclide, uptake=uptake, structure=name, candidates=candidates,
                         reason=reason, warnings=warnings)


def _rising_at_last_point(t, y, s, fitted, candidates, warnings, nuclide, uptake, name, absolute,
                          nsig) -> TacFit:
    """Highest activity at the last scan: uptake model bounded by physical decay, else trapezoid + physical tail.

    The trapezoid through the points with physical decay from the last measured value is the
    least such a curve integrates when it falls no faster than physical decay after the last scan.
    Candidates, in order: AICc-eligible uptake models (bi_uptake, tri; slowest clearance >=
    lambda_phys), then uptake with clearance by physical decay only (``uptake_physical_clearance``,
    2 parameters: the data cannot tell the clearance after a peak not yet seen). The first one
    that integrates at least the trapezoid is used; otherwise the trapezoid.
    """
    lam = nuclide.decay_constant_per_h
    n, t_last = len(t), float(t[-1])
    head = (f"activity rises up to the last scan ({t_last:g} h, the highest point): the curve after it "
            "must not fall faster than physical decay")
    floor = trapezoid_fit(t, y, s, nuclide=nuclide, uptake=uptake, structure=name, candidates=candidates,
                          warnings=warnings)
    eligible = sorted((fitted[m][2], m) for m in UPTAKE_MODELS if m in fitted and fitted[m][0]["ok"] and fitted[m][1])
    options = [(m, MODELS[m], fitted[m][0], f"AICc {fitted[m][2]:.2f}") for _, m in eligible]
    phys = uptake_physical_clearance(lam)
    if n > phys.n_params:
        res = fit_constrained(phys, t, y, s, lam, absolute, nsig)
        value = aicc(res["wrss"], n, phys.n_params) if (res["ok"] and n > phys.n_params + 1) else math.nan
        candidates.append(Candidate(phys.name, value, res["ok"], res["reason"]))
        if res["ok"]:
            options.append((phys.name, phys, res, f"{n - phys.n_params} degree(s) of freedom"))
    rejected = []
    for m, model, res, how in options:
        if res["tia"] >= floor.tia_mbq_h:
            reason = (f"{head}: uptake model {m} (clearance >= lambda_phys; {how}); its TIA {res['tia']:.4g} MBq.h "
                      f">= {floor.tia_mbq_h:.4g} MBq.h of the trapezoid with physical decay after the last point")
            return _exp_result(model, res, candidates, reason, warnings, t, y, s, name, lam)
        rejected.append(f"{m} integrates less ({res['tia']:.4g} MBq.h) than the points with physical decay "
                        "after the last one")
    if not options:
        rejected.append(f"no uptake model fittable with >= 1 degree of freedom (n={n})")
    floor.candidates = list(candidates)
    floor.selection_reason = (f"{head}: trapezoid through the points (A(0) = 0) with a physical-decay tail from "
                              "the last point; " + "; ".join(rejected))
    floor.warnings.append("activity rises after the first point: trapezoid with physical-decay tail used")
    return floor


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
    else:
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
                                       + ("Madsen not requested" if t_eff is not None
                                          else "no population T_eff for this structure"))
        warnings.append(f"Haenscheid method SD {h_rel_sd:.0%} is an assumption (ratio 2x 2^-x, x = t/T_eff)")
        if t_eff is not None:
            reason += f"; BED G factor with the population T_eff {t_eff:g} h (source: {entry_source})"
        else:
            warnings.append("no population T_eff: the BED G factor uses Haenscheid's T_eff = t")
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
        bed_t_eff_h=t_eff if model == "haenscheid" else None,
        bed_t_eff_source=(entry_source or "") if model == "haenscheid" else "",
    )
