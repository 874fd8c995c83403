"""START-NET protocol rules: cumulative kidney dose, the next cycle's limits, protocol deviations.

Pure functions over plain dataclasses (no database): the storage layer and the Slicer panel both
call them. Parameters are those of REFERENCE.md section 1, held in :class:`Protocol` so that a
site can change them (and the database records which values were used):

* kidney absorbed-dose limit 30 Gy (cumulative, sum of the per-cycle kidney doses);
* nominal activity 7.5 GBq per cycle;
* interval 10 +- 2 weeks between cycles. REFERENCE gives this for arm 2 only; arm 1 has no
  interval of its own in the seed text, so it is assumed to be the same (a per-arm parameter);
* arm 3 = 4 fixed cycles of the nominal activity, no dose limit driving the count (cumulative
  dose is still reported);
* planning estimate of kidney Gy/GBq = that of the most recent cycle (every stored cycle has
  kidney dosimetry, so "most recent cycle with dosimetry" is the most recent cycle), on the same
  basis as the limit: each cycle's Gy/GBq is the dose it counts against the limit
  (:meth:`CycleDose.limit_dose_gy`, the higher side with ``limit_basis = "max_side"``) divided by
  its activity. A cycle without per-side doses counts, and is planned with, the kidneys' mean in
  both places (the reason names such cycles);
* maximum activity of the next cycle = min(nominal, remaining dose / planning Gy/GBq), exactly
  as the formula gives it (texts show it rounded *down* to 1 MBq, never up over the limit), unless
  ``planning_confidence`` is set (then: the activity whose probability of the true cumulative dose
  exceeding the limit is <= 1 - confidence, :mod:`startnet.trial.planning`);
* whatever the rule, the next cycle reports ``probability_limit_exceeded`` (for the activity it
  allows) and ``max_activity_gbq_95`` (probability <= 5 %), and ``last_cycle_expected``: the
  remaining dose is below one nominal cycle's expected dose (nominal activity x planning Gy/GBq;
  with ``planning_confidence``, that dose's confidence quantile), i.e. the allowed activity is
  below the nominal one; in an arm with a fixed cycle count, the next cycle is the last of them;
* remaining dose = limit - cumulative, never below 0 (an overshoot is reported separately as
  ``limit_exceeded_by_gy``).

Planning parameters (all optional in a stored protocol: protocols stored before they existed load
with these defaults, which keep the point-estimate rule):

* ``planning_confidence``: None = point estimate (default); e.g. 0.95 plans at 95 % confidence;
* ``planning_cv_prior`` 0.15: intra-patient cycle-to-cycle relative SD of kidney Gy/GBq used until
  the patient has 3 cycles (then pooled with the patient's own). 10-20 % cycle-to-cycle variation
  is the figure of the independent physics review (issue 10); REFERENCE.md does not yet give a
  literature value for it (unverified: confirm with the trial's own data);
* ``planning_calibration_rel_sd`` 0.05: the part of each cycle's relative uncertainty that is
  common to all cycles (camera calibration factor; 5 % is the pipeline's GUM default,
  ``startnet.dosimetry.uncertainty.DEFAULT_CF_REL_SD``);
* ``planning_unrecorded_rel_sd`` 0.19: relative uncertainty assumed for a cycle recorded without
  one (Staanum 2021: 13 % with three time points, 19 % with one; the larger, unknown how measured).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from startnet.errors import InputError
from startnet.trial.planning import PlanningCycle, PlanningModel, build_model

DEFAULT_SITES: Tuple[str, ...] = ("Sahlgrenska", "Skåne", "Karolinska", "Uppsala")
LIMIT_BASES = ("mean", "max_side")
PLANNING_ESTIMATES = ("last", "max", "mean")
PLANNING_PARAMETERS = ("planning_confidence", "planning_cv_prior", "planning_calibration_rel_sd",
                       "planning_unrecorded_rel_sd")
ALERT_PROBABILITY = 0.05  # max_activity_gbq_95: P(exceed) <= 5 %


@dataclass(frozen=True)
class ArmRules:
    """Rules of one trial arm."""

    arm: int
    dose_limited: bool = True          # False: the cycle count is fixed, the dose is only reported
    fixed_cycles: Optional[int] = None  # arm 3: 4
    interval_weeks: float = 10.0
    interval_tolerance_weeks: float = 2.0
    capecitabine: bool = False          # arm 1 only


@dataclass(frozen=True)
class Protocol:
    """Protocol parameters; :func:`default_protocol` gives START-NET's."""

    kidney_limit_gy: float = 30.0
    nominal_activity_gbq: float = 7.5
    activity_tolerance_fraction: float = 0.0  # activity above max*(1+tol) is a deviation
    limit_basis: str = "mean"  # "mean": mean of both kidneys; "max_side": higher of left/right
    planning_estimate: str = "last"  # Gy/GBq for planning: "last" cycle, "max" (conservative), "mean"
    arms: Tuple[ArmRules, ...] = field(default_factory=tuple)
    sites: Tuple[str, ...] = DEFAULT_SITES
    planning_confidence: Optional[float] = None  # None: point estimate; 0.95: P(exceed) <= 5 %
    planning_cv_prior: float = 0.15              # cycle-to-cycle relative SD of Gy/GBq (prior)
    planning_calibration_rel_sd: float = 0.05    # correlated (calibration) part of a cycle's rel. SD
    planning_unrecorded_rel_sd: float = 0.19     # rel. SD of a cycle recorded without uncertainty

    def arm_rules(self, arm: int) -> ArmRules:
        for rules in self.arms:
            if rules.arm == arm:
                return rules
        raise InputError(f"arm {arm} is not defined by the protocol (arms: "
                         f"{', '.join(str(r.arm) for r in self.arms)})")

    def to_dict(self) -> Dict:
        data = asdict(self)
        data["arms"] = [asdict(r) for r in self.arms]
        data["sites"] = list(self.sites)
        return data

    @classmethod
    def from_dict(cls, data: Dict) -> Protocol:
        known = {"kidney_limit_gy", "nominal_activity_gbq", "activity_tolerance_fraction",
                 "limit_basis", "planning_estimate", "arms", "sites", *PLANNING_PARAMETERS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"protocol: unknown parameter(s) {', '.join(unknown)}; expected {sorted(known)}")
        kwargs = dict(data)
        if "arms" in kwargs:
            kwargs["arms"] = tuple(ArmRules(**a) for a in kwargs["arms"])
        if "sites" in kwargs:
            kwargs["sites"] = tuple(kwargs["sites"])
        protocol = cls(**kwargs)
        protocol.validate()
        return protocol

    def validate(self) -> None:
        if not self.kidney_limit_gy > 0:
            raise InputError(f"protocol: kidney_limit_gy must be > 0, got {self.kidney_limit_gy}")
        if not self.nominal_activity_gbq > 0:
            raise InputError(f"protocol: nominal_activity_gbq must be > 0, got {self.nominal_activity_gbq}")
        if self.limit_basis not in LIMIT_BASES:
            raise InputError(f"protocol: limit_basis must be one of {LIMIT_BASES}, got {self.limit_basis!r}")
        if self.planning_estimate not in PLANNING_ESTIMATES:
            raise InputError(f"protocol: planning_estimate must be one of {PLANNING_ESTIMATES}, "
                             f"got {self.planning_estimate!r}")
        for name, low, high, low_open in (("planning_cv_prior", 0.0, 1.0, False),
                                          ("planning_calibration_rel_sd", 0.0, 1.0, False),
                                          ("planning_unrecorded_rel_sd", 0.0, 1.0, True),
                                          ("planning_confidence", 0.5, 1.0, False)):
            value = getattr(self, name)
            if value is None and name == "planning_confidence":
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not (low < value < high if low_open else low <= value < high)):
                bounds = f"{low:g} {'<' if low_open else '<='} x < {high:g}"
                extra = " or null (point estimate)" if name == "planning_confidence" else ""
                raise InputError(f"protocol: {name} must be a number {bounds}{extra}, got {value!r}")
        if not self.arms:
            raise InputError("protocol: no arms defined")
        for r in self.arms:
            if not r.dose_limited and not r.fixed_cycles:
                raise InputError(f"protocol: arm {r.arm} has neither a dose limit nor a fixed cycle count")


def default_protocol() -> Protocol:
    """START-NET as in REFERENCE.md section 1."""
    return Protocol(arms=(
        ArmRules(arm=1, dose_limited=True, capecitabine=True),
        ArmRules(arm=2, dose_limited=True),
        ArmRules(arm=3, dose_limited=False, fixed_cycles=4),
    ))


@dataclass(frozen=True)
class CycleDose:
    """What the rules need of one given cycle."""

    cycle: int
    date: dt.date
    activity_gbq: float
    kidney_gy: float                       # mean absorbed dose of both kidneys
    kidney_left_gy: Optional[float] = None
    kidney_right_gy: Optional[float] = None
    uncertainty_pct: Optional[float] = None
    bed_gy: Optional[float] = None
    capecitabine_given: bool = False

    def limit_dose_gy(self, basis: str) -> float:
        """The dose counted against the limit: the kidneys' mean, or the higher side's mean."""
        if basis == "max_side":
            sides = [d for d in (self.kidney_left_gy, self.kidney_right_gy) if d is not None]
            if sides:
                return max(sides)
        return self.kidney_gy

    @property
    def gy_per_gbq(self) -> float:
        return self.kidney_gy / self.activity_gbq

    def limit_gy_per_gbq(self, basis: str) -> float:
        """Gy/GBq of the dose counted against the limit (the basis planning must use too)."""
        return self.limit_dose_gy(basis) / self.activity_gbq

    def lacks_sides(self, basis: str) -> bool:
        return basis == "max_side" and self.kidney_left_gy is None and self.kidney_right_gy is None


@dataclass(frozen=True)
class Deviation:
    code: str
    message: str


@dataclass(frozen=True)
class NextCycle:
    cycle: int
    allowed: bool
    max_activity_gbq: float
    earliest_date: Optional[dt.date]
    latest_date: Optional[dt.date]
    reason: str
    planning_gy_per_gbq: Optional[float]
    probability_limit_exceeded: Optional[float] = None  # for max_activity_gbq (None: no dosimetry yet)
    max_activity_gbq_95: Optional[float] = None          # keeps that probability <= 5 %
    last_cycle_expected: bool = False                    # remaining < one nominal cycle's expected dose
    planning_cv: Optional[float] = None                  # cycle-to-cycle relative SD of Gy/GBq used
    planning_cv_source: Optional[str] = None


@dataclass(frozen=True)
class DoseSummary:
    limit_gy: float
    cumulative_kidney_gy: float
    remaining_kidney_gy: float                  # >= 0
    limit_exceeded_by_gy: float                 # >= 0: cumulative - limit when above it
    cumulative_uncertainty_gy: Optional[float]  # linear sum (fully correlated) of the limit-basis doses'
    cumulative_bed_gy: Optional[float]          # sum over cycles (full repair between cycles)
    next_cycle: NextCycle


def _clean(x: float) -> float:
    """Round away float noise (1e-9 Gy is far below any meaningful dose)."""
    return round(x, 9)


def cumulative_kidney_gy(protocol: Protocol, cycles: Sequence[CycleDose]) -> float:
    return _clean(sum(c.limit_dose_gy(protocol.limit_basis) for c in cycles))


def _floor_mbq(activity_gbq: float) -> float:
    return math.floor(activity_gbq * 1000.0 + 1e-6) / 1000.0


def _usable(protocol: Protocol, cycles: Sequence[CycleDose]) -> List[CycleDose]:
    return [c for c in cycles if c.limit_dose_gy(protocol.limit_basis) > 0 and c.activity_gbq > 0]


def _planning_weights(protocol: Protocol, usable: Sequence[CycleDose]) -> List[float]:
    """Weights w_i of the planning estimate g_hat = sum w_i r_i over the usable cycles."""
    n = len(usable)
    if protocol.planning_estimate == "mean":
        return [1.0 / n] * n
    ratios = [c.limit_gy_per_gbq(protocol.limit_basis) for c in usable]
    pick = n - 1
    if protocol.planning_estimate == "max":
        pick = max(range(n), key=lambda i: (ratios[i], i))
    return [1.0 if i == pick else 0.0 for i in range(n)]


def _planning_gy_per_gbq(protocol: Protocol, cycles: Sequence[CycleDose]) -> Optional[float]:
    """Gy/GBq expected for the next cycle on the limit's basis, from the cycles given so far."""
    usable = _usable(protocol, cycles)
    if not usable:
        return None
    weights = _planning_weights(protocol, usable)
    return sum(w * c.limit_gy_per_gbq(protocol.limit_basis) for w, c in zip(weights, usable))


def planning_model(protocol: Protocol, cycles: Sequence[CycleDose]) -> Optional[PlanningModel]:
    """The uncertainty model of :mod:`startnet.trial.planning` for these cycles (None without any)."""
    cycles = sorted(cycles, key=lambda c: c.cycle)
    usable = _usable(protocol, cycles)
    if not usable:
        return None
    weights = dict(zip((c.cycle for c in usable), _planning_weights(protocol, usable)))
    basis = protocol.limit_basis
    model_cycles = [PlanningCycle(
        dose_gy=c.limit_dose_gy(basis), activity_gbq=c.activity_gbq,
        rel_sd=(c.uncertainty_pct / 100.0 if c.uncertainty_pct is not None
                else protocol.planning_unrecorded_rel_sd),
        weight=weights.get(c.cycle, 0.0)) for c in cycles if c.activity_gbq > 0]
    return build_model(model_cycles, cv_prior=protocol.planning_cv_prior,
                       calibration_rel_sd=protocol.planning_calibration_rel_sd)


def _window(rules: ArmRules, last: dt.date) -> Tuple[dt.date, dt.date]:
    centre_d = rules.interval_weeks * 7.0
    tol_d = rules.interval_tolerance_weeks * 7.0
    return (last + dt.timedelta(days=round(centre_d - tol_d)),
            last + dt.timedelta(days=round(centre_d + tol_d)))


def _basis_text(protocol: Protocol, cycles: Sequence[CycleDose]) -> str:
    if protocol.planning_estimate == "last":
        return f"cycle {cycles[-1].cycle}"
    return f"{protocol.planning_estimate} of cycles 1-{cycles[-1].cycle}"


def _sides_note(protocol: Protocol, cycles: Sequence[CycleDose]) -> str:
    missing = [str(c.cycle) for c in cycles if c.lacks_sides(protocol.limit_basis)]
    if not missing:
        return ""
    return (f"; cycle(s) {', '.join(missing)} have no per-side kidney dose: their mean of both kidneys is "
            f"counted and planned (limit basis max_side)")


def _uncertainty_note(protocol: Protocol, model: PlanningModel, cycles: Sequence[CycleDose]) -> str:
    """The assumptions behind the probability (its numbers are fields of :class:`NextCycle`)."""
    text = f" (uncertainty model: cycle-to-cycle variation {model.cv:.0%}, {model.cv_source}"
    unrecorded = [str(c.cycle) for c in cycles if c.uncertainty_pct is None]
    if unrecorded:
        text += (f"; cycle(s) {', '.join(unrecorded)} without recorded uncertainty taken as "
                 f"{protocol.planning_unrecorded_rel_sd:.0%}")
    return text + ")"


def next_cycle(protocol: Protocol, arm: int, cycles: Sequence[CycleDose],
               enrolled: dt.date) -> NextCycle:
    """Whether another cycle is allowed, its maximum activity and date window.

    With cycles given, it also reports the probability that the true cumulative dose exceeds the
    limit after the allowed activity, the activity that keeps that probability <= 5 % and whether
    the next cycle is expected to be the last (see the module text).
    """
    rules = protocol.arm_rules(arm)
    cycles = sorted(cycles, key=lambda c: c.cycle)
    number = len(cycles) + 1
    nominal = protocol.nominal_activity_gbq
    limit = protocol.kidney_limit_gy
    if cycles:
        earliest, latest = _window(rules, cycles[-1].date)
        planning = _planning_gy_per_gbq(protocol, cycles)
    else:
        earliest, latest, planning = enrolled, None, None
    model = planning_model(protocol, cycles) if planning is not None else None
    cumulative = cumulative_kidney_gy(protocol, cycles)
    remaining = _clean(limit - cumulative)

    def result(allowed: bool, max_gbq: float, reason: str, last: bool) -> NextCycle:
        if model is None:
            return NextCycle(number, allowed, max_gbq, earliest if allowed else None,
                             latest if allowed else None, reason, planning, last_cycle_expected=last)
        a95 = model.max_activity_gbq(limit, 1.0 - ALERT_PROBABILITY, nominal) if allowed else 0.0
        probability = model.probability_exceeded(limit, max_gbq)
        if rules.dose_limited or allowed:
            reason += _uncertainty_note(protocol, model, cycles)
        return NextCycle(number, allowed, max_gbq, earliest if allowed else None, latest if allowed else None,
                         reason + _sides_note(protocol, cycles), planning,
                         probability_limit_exceeded=round(probability, 6), max_activity_gbq_95=a95,
                         last_cycle_expected=last, planning_cv=round(model.cv, 6),
                         planning_cv_source=model.cv_source)

    if rules.fixed_cycles is not None and len(cycles) >= rules.fixed_cycles:
        return result(False, 0.0, f"arm {arm}: all {rules.fixed_cycles} fixed cycles given", False)
    if not rules.dose_limited:
        return result(True, nominal, f"arm {arm}: cycle {number} of {rules.fixed_cycles} fixed cycles at the "
                      f"nominal {nominal:g} GBq (the kidney dose does not limit this arm)",
                      rules.fixed_cycles is not None and number == rules.fixed_cycles)
    if remaining <= 0:
        return result(False, 0.0, f"cumulative kidney dose {cumulative:.2f} Gy has reached the {limit:g} Gy "
                      f"limit", False)
    if planning is None:
        return result(True, nominal, f"first cycle: nominal {nominal:g} GBq (no kidney dosimetry yet)", False)
    by_dose = remaining / planning
    head = (f"remaining {remaining:.2f} Gy of the {limit:g} Gy limit at {planning:.3f} Gy/GBq "
            f"({_basis_text(protocol, cycles)})")
    confidence = protocol.planning_confidence
    if confidence is None:
        max_gbq = min(nominal, by_dose)
        rule = head
    else:
        max_gbq = model.max_activity_gbq(limit, confidence, nominal)
        rule = (f"{head}, planned at {confidence:.0%} confidence (P(true cumulative > {limit:g} Gy) <= "
                f"{1.0 - confidence:.0%})")
        if max_gbq <= 0.0:
            return result(False, 0.0, f"{rule}: no activity keeps the probability that low", False)
    # last cycle expected: what remains (at the planning rule) is less than one nominal cycle's
    # expected dose, so the allowed activity is below the nominal one
    last = max_gbq < nominal
    if not last:
        if confidence is None:
            return result(True, nominal, f"{head} allows {by_dose:.2f} GBq: nominal {nominal:g} GBq", False)
        return result(True, nominal, f"{rule}: nominal {nominal:g} GBq", False)
    expected = "expected" if confidence is None else f"{confidence:.0%}-quantile"
    flag = (f"; LAST CYCLE EXPECTED: the remaining {remaining:.2f} Gy is below one nominal cycle's {expected} "
            f"dose")
    return result(True, max_gbq, f"{rule} limits the activity to {_floor_mbq(max_gbq):.3f} GBq{flag}", True)


def dose_summary(protocol: Protocol, arm: int, cycles: Sequence[CycleDose],
                 enrolled: dt.date) -> DoseSummary:
    cumulative = cumulative_kidney_gy(protocol, cycles)
    u_parts = [c.limit_dose_gy(protocol.limit_basis) * c.uncertainty_pct / 100.0
               for c in cycles if c.uncertainty_pct is not None]
    u_total = _clean(sum(u_parts)) if cycles and len(u_parts) == len(cycles) else None
    bed_parts = [c.bed_gy for c in cycles if c.bed_gy is not None]
    bed_total = _clean(sum(bed_parts)) if cycles and len(bed_parts) == len(cycles) else None
    return DoseSummary(
        limit_gy=protocol.kidney_limit_gy,
        cumulative_kidney_gy=cumulative,
        remaining_kidney_gy=max(0.0, _clean(protocol.kidney_limit_gy - cumulative)),
        limit_exceeded_by_gy=max(0.0, _clean(cumulative - protocol.kidney_limit_gy)),
        cumulative_uncertainty_gy=u_total,
        cumulative_bed_gy=bed_total,
        next_cycle=next_cycle(protocol, arm, cycles, enrolled),
    )


def check_cycle(protocol: Protocol, arm: int, prior: Sequence[CycleDose], proposed: CycleDose,
                enrolled: dt.date) -> List[Deviation]:
    """Protocol deviations of giving ``proposed`` after the ``prior`` cycles.

    Impossible records (cycle numbers out of sequence, dates not after the previous cycle or
    before enrolment, non-positive activity, negative dose) raise :class:`InputError`.
    """
    prior = sorted(prior, key=lambda c: c.cycle)
    expected = len(prior) + 1
    if proposed.cycle != expected:
        raise InputError(f"cycle {proposed.cycle}: the next cycle to record is {expected} "
                         f"(cycles must be recorded in order)")
    if not proposed.activity_gbq > 0:
        raise InputError(f"cycle {proposed.cycle}: activity_gbq must be > 0, got {proposed.activity_gbq}")
    if not (math.isfinite(proposed.kidney_gy) and proposed.kidney_gy > 0):
        raise InputError(f"cycle {proposed.cycle}: kidney_gy must be > 0 (the cycle's kidney dosimetry), "
                         f"got {proposed.kidney_gy}")
    for name in ("kidney_gy", "kidney_left_gy", "kidney_right_gy", "uncertainty_pct", "bed_gy"):
        value = getattr(proposed, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InputError(f"cycle {proposed.cycle}: {name} must be a finite number >= 0, got {value}")
    if proposed.date < enrolled:
        raise InputError(f"cycle {proposed.cycle}: date {proposed.date} is before enrolment {enrolled}")
    if prior and proposed.date <= prior[-1].date:
        raise InputError(f"cycle {proposed.cycle}: date {proposed.date} is not after cycle "
                         f"{prior[-1].cycle} ({prior[-1].date})")

    rules = protocol.arm_rules(arm)
    plan = next_cycle(protocol, arm, prior, enrolled)
    deviations: List[Deviation] = []
    if not plan.allowed:
        code = "fixed_cycles_exceeded" if not rules.dose_limited else "dose_limit_reached"
        deviations.append(Deviation(code, f"cycle {proposed.cycle} not allowed: {plan.reason}"))
    else:
        ceiling = plan.max_activity_gbq * (1.0 + protocol.activity_tolerance_fraction)
        if proposed.activity_gbq > ceiling + 1e-9:
            deviations.append(Deviation(
                "activity_above_maximum",
                f"activity {proposed.activity_gbq:g} GBq is above the allowed maximum "
                f"{_floor_mbq(plan.max_activity_gbq):.3f} GBq ({plan.reason})"))
        if plan.latest_date is not None and plan.earliest_date is not None and not (
                plan.earliest_date <= proposed.date <= plan.latest_date):
            deviations.append(Deviation(
                "interval_out_of_window",
                f"date {proposed.date} is outside the window {plan.earliest_date} to {plan.latest_date} "
                f"({rules.interval_weeks:g} +- {rules.interval_tolerance_weeks:g} weeks after cycle "
                f"{prior[-1].cycle} on {prior[-1].date})"))
    if proposed.capecitabine_given and not rules.capecitabine:
        deviations.append(Deviation("capecitabine_outside_arm",
                                    f"capecitabine recorded for an arm-{arm} patient (only arm 1 gets it)"))
    return deviations
