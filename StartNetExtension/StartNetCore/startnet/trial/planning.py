"""Next-cycle planning under uncertainty: P(true cumulative kidney dose > limit) for an activity A.

REFERENCE.md section 7: with the cumulative dose D_cum +- u_cum (calibration part fully correlated
across cycles) and a predicted Gy/GBq g +- u_g, P(exceed) for activity A is P(D_cum + g A > limit);
planning at confidence c uses the c-quantile of D_cum + g A.

Model (all relative errors are standard deviations of normal variables, independent unless said):

* cycle i (i = 1..k) was given activity A_i and measured dose d_i (the dose counted against the
  limit: the kidneys' mean or the higher side, as the protocol's ``limit_basis`` says);
  r_i = d_i / A_i is its measured Gy/GBq;
* measurement: d_i = D_i (1 + c + e_i) with D_i the true dose. c is the camera calibration error
  (relative SD s_c, the protocol's ``planning_calibration_rel_sd``): ONE value shared by every
  cycle *and* by the planning estimate, since every cycle is measured with the same camera and
  calibration (taking it as fully correlated is the conservative choice: all its coefficients
  below have the same sign, so any partial correlation gives a smaller variance). e_i is the rest
  of cycle i's uncertainty, independent between cycles: s_i^2 = u_i^2 - s_c^2 with u_i the
  cycle's recorded relative uncertainty (``uncertainty_pct``; if the cycle has none the
  protocol's ``planning_unrecorded_rel_sd``); s_c is capped at u_i;
* intra-patient variation: the true Gy/GBq of cycle i is G (1 + v_i), v_i with relative SD ``cv``
  (cycle-to-cycle variation), independent between cycles, including the next one, v_next;
* the planning estimate is the protocol's point estimate g_hat = sum_i w_i r_i (``last``: w = 1
  on the last cycle; ``mean``: w_i = 1/k; ``max``: w = 1 on the cycle with the highest r_i, a
  linearisation around a value that is biased upwards, hence conservative).

To first order (GUM, Gear 2018; flat prior, so the unknowns are the measurements corrected by
the errors with their signs flipped, which leaves the variances unchanged) the true total after a
next cycle of activity A is

    T(A) = M + A g_hat - c (M + A g_hat) - sum_i e_i (d_i + A w_i r_i) - A sum_i w_i r_i v_i + A g_hat v_next

with M = sum_i d_i, so E[T] = M + A g_hat and

    Var T(A) = (sum_i s_c,i (d_i + A w_i r_i))^2 + sum_i s_i^2 (d_i + A w_i r_i)^2
               + cv^2 A^2 (g_hat^2 + sum_i w_i^2 r_i^2).

The calibration error enters the past doses and the planning estimate with the same sign: a camera
reading high overstates both, so their errors add linearly (the covariance term), while a cycle's
independent error enters the cumulative dose and, if that cycle is part of the planning estimate,
the prediction too (again linearly, per cycle). P(exceed) = 1 - Phi((L - E[T]) / sqrt(Var T)),
a normal model: the quantities are sums of several terms with relative SDs of 5-20 %, where the
linearised normal is within about one percentage point of the exact multiplicative model (the
Monte Carlo test in ``Testing/unit/test_trial_planning.py`` checks it); a log-normal would fit a
single multiplicative factor but not the sum of fixed past doses and an uncertain next one.

Cycle-to-cycle variation ``cv``: the protocol's prior ``planning_cv_prior`` until the patient has
``OWN_CV_MIN_CYCLES`` (3) cycles; then the sample relative variance of the patient's r_i minus the
mean independent measurement variance (the calibration error is common to all cycles and does not
spread them), never below 0, pooled with the prior weighted as ``CV_PRIOR_DOF`` (2) degrees of
freedom: cv^2 = (2 cv_prior^2 + (k - 1) cv_own^2) / (2 + k - 1). Three perfectly consistent cycles
thus give 0.71 cv_prior, seven 0.5 cv_prior: a few cycles never make the prediction certain.

Limits (measured by the patient simulation in the tests: 0.45-0.9 Gy/GBq, cv 15 %, calibration
5 %, other errors 8 %): planning every course at 95 % up to the cycle flagged as the last ends
above the limit in 5.8 % of courses (point estimate: 50 %). The errors are not conditioned on
the decision to continue, which favours courses whose doses were measured low; if further small
"top-up" cycles follow the flagged last cycle, each re-plan selects again and the course-level
figure rises to about 9 % (point estimate 56 %). The cycle-to-cycle variation is taken as
independent between cycles: a trend in Gy/GBq shows up only through a larger own cv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Mapping, Optional, Sequence

OWN_CV_MIN_CYCLES = 3
CV_PRIOR_DOF = 2.0
_STD_NORMAL = NormalDist()


@dataclass(frozen=True)
class PlanningCycle:
    """One given cycle as the uncertainty model sees it."""

    dose_gy: float          # dose counted against the limit (limit basis)
    activity_gbq: float
    rel_sd: float           # total relative standard uncertainty of dose_gy
    weight: float           # weight w_i in the planning estimate g_hat = sum w_i r_i

    @property
    def gy_per_gbq(self) -> float:
        return self.dose_gy / self.activity_gbq


@dataclass(frozen=True)
class PlanningModel:
    """E[T(A)] = cumulative_gy + A gy_per_gbq; Var T(A) = var0 + var1 A + var2 A^2."""

    cumulative_gy: float
    gy_per_gbq: float
    var0: float
    var1: float
    var2: float
    cv: float
    cv_source: str

    def mean_gy(self, activity_gbq: float) -> float:
        return self.cumulative_gy + activity_gbq * self.gy_per_gbq

    def sd_gy(self, activity_gbq: float) -> float:
        a = activity_gbq
        return math.sqrt(max(self.var0 + self.var1 * a + self.var2 * a * a, 0.0))

    def probability_exceeded(self, limit_gy: float, activity_gbq: float) -> float:
        """P(true cumulative dose after a next cycle of ``activity_gbq`` > ``limit_gy``)."""
        mean, sd = self.mean_gy(activity_gbq), self.sd_gy(activity_gbq)
        if sd <= 0.0:
            return 1.0 if mean > limit_gy else 0.0
        return 1.0 - _STD_NORMAL.cdf((limit_gy - mean) / sd)

    def quantile_gy(self, activity_gbq: float, confidence: float) -> float:
        return self.mean_gy(activity_gbq) + _STD_NORMAL.inv_cdf(confidence) * self.sd_gy(activity_gbq)

    def max_activity_gbq(self, limit_gy: float, confidence: float, cap_gbq: float) -> float:
        """Largest activity in [0, cap] whose ``confidence``-quantile of T stays <= the limit.

        The quantile is increasing in A (every variance coefficient is >= 0), so bisection finds
        it; the value returned always satisfies the condition (0 if even A = 0 does not).
        """
        if self.quantile_gy(cap_gbq, confidence) <= limit_gy:
            return cap_gbq
        if self.quantile_gy(0.0, confidence) > limit_gy:
            return 0.0
        lo, hi = 0.0, cap_gbq
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if self.quantile_gy(mid, confidence) <= limit_gy:
                lo = mid
            else:
                hi = mid
        return lo


def intra_patient_cv(cycles: Sequence[PlanningCycle], cv_prior: float, calibration_rel_sd: float):
    """(cv, source text) of the cycle-to-cycle variation of Gy/GBq, as the module text says."""
    k = len(cycles)
    if k < OWN_CV_MIN_CYCLES:
        return cv_prior, f"protocol prior {cv_prior:.0%} (fewer than {OWN_CV_MIN_CYCLES} cycles)"
    ratios = [c.gy_per_gbq for c in cycles]
    mean = sum(ratios) / k
    sample_var_rel = sum((r - mean) ** 2 for r in ratios) / (k - 1) / mean ** 2
    noise_var_rel = sum(_independent_rel_sd(c.rel_sd, calibration_rel_sd) ** 2 for c in cycles) / k
    own_var = max(0.0, sample_var_rel - noise_var_rel)
    pooled = (CV_PRIOR_DOF * cv_prior ** 2 + (k - 1) * own_var) / (CV_PRIOR_DOF + k - 1)
    return math.sqrt(pooled), (f"{k} cycles' own {math.sqrt(own_var):.0%} pooled with the prior "
                               f"{cv_prior:.0%}")


def _calibration_rel_sd(rel_sd: float, calibration_rel_sd: float) -> float:
    return min(calibration_rel_sd, rel_sd)


def _independent_rel_sd(rel_sd: float, calibration_rel_sd: float) -> float:
    return math.sqrt(max(rel_sd ** 2 - _calibration_rel_sd(rel_sd, calibration_rel_sd) ** 2, 0.0))


def build_model(cycles: Sequence[PlanningCycle], *, cv_prior: float, calibration_rel_sd: float,
                cv: Optional[float] = None) -> PlanningModel:
    """The model of the module text from the given cycles (weights define g_hat)."""
    if not cycles:
        raise ValueError("build_model needs at least one cycle")
    if cv is None:
        cv, source = intra_patient_cv([c for c in cycles if c.dose_gy > 0], cv_prior, calibration_rel_sd)
    else:
        source = f"given {cv:.0%}"
    g_hat = sum(c.weight * c.gy_per_gbq for c in cycles)
    cumulative = sum(c.dose_gy for c in cycles)
    # calibration: (p + q A)^2 with p = sum s_c,i d_i, q = sum s_c,i w_i r_i (fully correlated)
    p = sum(_calibration_rel_sd(c.rel_sd, calibration_rel_sd) * c.dose_gy for c in cycles)
    q = sum(_calibration_rel_sd(c.rel_sd, calibration_rel_sd) * c.weight * c.gy_per_gbq for c in cycles)
    var0, var1, var2 = p * p, 2.0 * p * q, q * q
    for c in cycles:  # independent part of each cycle: s_i^2 (d_i + A w_i r_i)^2
        s2 = _independent_rel_sd(c.rel_sd, calibration_rel_sd) ** 2
        wr = c.weight * c.gy_per_gbq
        var0 += s2 * c.dose_gy ** 2
        var1 += 2.0 * s2 * c.dose_gy * wr
        var2 += s2 * wr * wr
    var2 += cv ** 2 * (g_hat ** 2 + sum((c.weight * c.gy_per_gbq) ** 2 for c in cycles))
    return PlanningModel(cumulative, g_hat, var0, var1, var2, cv, source)


def floor_activity_gbq(activity_gbq: float, decimals: int = 3) -> float:
    """An activity rounded *down* for display (a shown maximum is never above the allowed one)."""
    scale = 10.0 ** decimals
    return math.floor(activity_gbq * scale + 1e-6) / scale


def uncertainty_sentence(next_cycle: Mapping[str, Any], limit_gy: float) -> str:
    """Both planning numbers of a status ``next_cycle`` dict in words ("" when it has none).

    Used by the Trial Tracker panel, the report and the run summary so that they say the same.
    """
    probability = next_cycle.get("probability_limit_exceeded")
    a95 = next_cycle.get("max_activity_gbq_95")
    text = ""
    if next_cycle.get("last_cycle_expected"):
        text = "Last cycle expected (the remaining dose is below one nominal cycle's expected dose). "
    if probability is None or a95 is None:
        return text.strip()
    activity = next_cycle.get("max_activity_gbq") or 0.0
    return text + (f"Probability that the true cumulative kidney dose exceeds {limit_gy:g} Gy: "
                   f"{100.0 * probability:.1f} % at {floor_activity_gbq(activity, 2):.2f} GBq; "
                   f"at most {floor_activity_gbq(a95, 2):.2f} GBq keeps it <= 5 %.")
