"""Protocol rules against hand-computed cases (REFERENCE.md section 1)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from startnet.errors import InputError
from startnet.trial.protocol import (
    ArmRules,
    CycleDose,
    Protocol,
    check_cycle,
    cumulative_kidney_gy,
    default_protocol,
    dose_summary,
    next_cycle,
)

P = default_protocol()
ENROLLED = dt.date(2025, 1, 1)


def _cycles(doses_gy, activity_gbq=7.5, start=dt.date(2025, 1, 10), weeks=10, **kw):
    return [CycleDose(cycle=i + 1, date=start + dt.timedelta(weeks=weeks * i), activity_gbq=activity_gbq,
                      kidney_gy=d, **kw) for i, d in enumerate(doses_gy)]


def test_hand_case_28_gy_after_3_gy_at_7_5_gbq_allows_5_gbq():
    # 8 cycles of 3.125 Gy = 25.0 Gy, then 3.0 Gy at 7.5 GBq -> 28.0 Gy, 0.4 Gy/GBq -> 2.0 / 0.4 = 5.0 GBq
    cycles = _cycles([3.125] * 8 + [3.0])
    summary = dose_summary(P, 2, cycles, ENROLLED)
    assert summary.cumulative_kidney_gy == pytest.approx(28.0, abs=1e-12)
    assert summary.remaining_kidney_gy == pytest.approx(2.0, abs=1e-12)
    nxt = summary.next_cycle
    assert nxt.allowed and nxt.cycle == 10
    assert nxt.planning_gy_per_gbq == pytest.approx(0.4)
    assert nxt.max_activity_gbq == pytest.approx(5.0, abs=1e-12)
    last = cycles[-1].date
    assert nxt.earliest_date == last + dt.timedelta(weeks=8)
    assert nxt.latest_date == last + dt.timedelta(weeks=12)


def test_nominal_activity_caps_when_dose_allows_more():
    nxt = next_cycle(P, 1, _cycles([2.775]), ENROLLED)  # 0.37 Gy/GBq: 27.225 Gy left -> 73.6 GBq
    assert nxt.allowed and nxt.max_activity_gbq == 7.5
    assert "nominal" in nxt.reason


def test_max_activity_is_the_formula_value_shown_rounded_down():
    # 26.75 + 2.25 = 29 Gy; last cycle 2.25 Gy / 7.5 GBq = 0.3 Gy/GBq; 1.0 / 0.3 = 3.3333 GBq
    nxt = next_cycle(P, 2, _cycles([26.75, 2.25]), ENROLLED)
    assert nxt.max_activity_gbq == pytest.approx(1.0 / 0.3, rel=1e-12)
    assert "3.333 GBq" in nxt.reason  # the text never rounds up over the limit
    # 29.0 Gy after 0.3 Gy/GBq: 3.3333 GBq allowed; 3.334 is a deviation, 3.333 is not
    date = _cycles([26.75, 2.25])[-1].date + dt.timedelta(weeks=10)
    assert check_cycle(P, 2, _cycles([26.75, 2.25]), CycleDose(3, date, 3.333, 1.0), ENROLLED) == []
    devs = check_cycle(P, 2, _cycles([26.75, 2.25]), CycleDose(3, date, 3.334, 1.0), ENROLLED)
    assert [d.code for d in devs] == ["activity_above_maximum"]


def test_planning_estimate_is_a_protocol_parameter():
    cycles = _cycles([3.0, 4.5, 3.75])  # 0.4, 0.6, 0.5 Gy/GBq; 11.25 Gy given, 18.75 Gy left
    assert next_cycle(P, 2, cycles, ENROLLED).planning_gy_per_gbq == pytest.approx(0.5)
    worst = next_cycle(replace(P, planning_estimate="max"), 2, cycles, ENROLLED)
    assert worst.planning_gy_per_gbq == pytest.approx(0.6) and "max of cycles 1-3" in worst.reason
    mean = next_cycle(replace(P, planning_estimate="mean"), 2, cycles, ENROLLED)
    assert mean.planning_gy_per_gbq == pytest.approx(0.5)
    near_limit = _cycles([9.0, 9.0, 3.0, 6.0])  # 27 Gy: 3 Gy left; last 0.8, max 1.2 Gy/GBq
    assert next_cycle(P, 2, near_limit, ENROLLED).max_activity_gbq == pytest.approx(3.75)
    assert next_cycle(replace(P, planning_estimate="max"), 2, near_limit, ENROLLED).max_activity_gbq == \
        pytest.approx(2.5)


def test_limit_reached_refuses_next_cycle_with_reason():
    for doses in ([3.0] * 10, [7.0, 7.0, 7.0, 9.5]):
        nxt = next_cycle(P, 2, _cycles(doses), ENROLLED)
        assert not nxt.allowed
        assert nxt.max_activity_gbq == 0.0
        assert nxt.earliest_date is None and nxt.latest_date is None
        assert "limit" in nxt.reason and "30" in nxt.reason


def test_arm3_four_fixed_cycles_dose_not_limiting():
    # 4 cycles of 8 Gy = 32 Gy: above 30 Gy, yet arm 3 gives its 4 fixed cycles at nominal activity
    cycles = _cycles([8.0] * 3)
    summary = dose_summary(P, 3, cycles, ENROLLED)
    assert summary.cumulative_kidney_gy == 24.0
    assert summary.next_cycle.allowed and summary.next_cycle.max_activity_gbq == 7.5
    assert check_cycle(P, 3, cycles, CycleDose(4, cycles[-1].date + dt.timedelta(weeks=10), 7.5, 8.0),
                       ENROLLED) == []
    four = _cycles([8.0] * 4)
    summary = dose_summary(P, 3, four, ENROLLED)
    assert summary.cumulative_kidney_gy == 32.0 and summary.remaining_kidney_gy == 0.0
    assert summary.limit_exceeded_by_gy == 2.0
    assert not summary.next_cycle.allowed and "4 fixed cycles" in summary.next_cycle.reason
    fifth = CycleDose(5, four[-1].date + dt.timedelta(weeks=10), 7.5, 8.0)
    assert [d.code for d in check_cycle(P, 3, four, fifth, ENROLLED)] == ["fixed_cycles_exceeded"]


def test_interval_window_edges_and_per_arm_interval():
    prior = _cycles([3.0])
    d0 = prior[0].date
    for weeks, days, ok in ((8, 0, True), (12, 0, True), (8, -1, False), (12, 1, False), (10, 0, True)):
        proposed = CycleDose(2, d0 + dt.timedelta(weeks=weeks, days=days), 7.5, 3.0)
        codes = [d.code for d in check_cycle(P, 2, prior, proposed, ENROLLED)]
        assert codes == ([] if ok else ["interval_out_of_window"]), (weeks, days)
    # arm 1 with its own interval (6 +- 1 weeks) as a protocol parameter
    p6 = replace(P, arms=(ArmRules(arm=1, interval_weeks=6, interval_tolerance_weeks=1, capecitabine=True),))
    nxt = next_cycle(p6, 1, prior, ENROLLED)
    assert (nxt.earliest_date, nxt.latest_date) == (d0 + dt.timedelta(weeks=5), d0 + dt.timedelta(weeks=7))


def test_activity_above_max_is_a_deviation():
    cycles = _cycles([3.125] * 8 + [3.0])  # max 5.0 GBq next
    date = cycles[-1].date + dt.timedelta(weeks=10)
    assert check_cycle(P, 2, cycles, CycleDose(10, date, 5.0, 2.0), ENROLLED) == []
    devs = check_cycle(P, 2, cycles, CycleDose(10, date, 5.1, 2.04), ENROLLED)
    assert [d.code for d in devs] == ["activity_above_maximum"]
    assert "5.000 GBq" in devs[0].message
    tolerant = replace(P, activity_tolerance_fraction=0.05)  # 5.25 GBq ceiling
    assert check_cycle(tolerant, 2, cycles, CycleDose(10, date, 5.1, 2.04), ENROLLED) == []


def test_cycle_beyond_limit_is_a_deviation():
    cycles = _cycles([3.0] * 10)
    date = cycles[-1].date + dt.timedelta(weeks=10)
    devs = check_cycle(P, 2, cycles, CycleDose(11, date, 7.5, 3.0), ENROLLED)
    assert [d.code for d in devs] == ["dose_limit_reached"]


def test_capecitabine_outside_arm_1_is_a_deviation():
    date = dt.date(2025, 1, 10)
    assert check_cycle(P, 1, [], CycleDose(1, date, 7.5, 3.0, capecitabine_given=True), ENROLLED) == []
    devs = check_cycle(P, 2, [], CycleDose(1, date, 7.5, 3.0, capecitabine_given=True), ENROLLED)
    assert [d.code for d in devs] == ["capecitabine_outside_arm"]


def test_impossible_records_are_input_errors():
    prior = _cycles([3.0])
    with pytest.raises(InputError, match="next cycle to record is 2"):
        check_cycle(P, 2, prior, CycleDose(3, dt.date(2025, 4, 1), 7.5, 3.0), ENROLLED)
    with pytest.raises(InputError, match="not after cycle 1"):
        check_cycle(P, 2, prior, CycleDose(2, prior[0].date, 7.5, 3.0), ENROLLED)
    with pytest.raises(InputError, match="before enrolment"):
        check_cycle(P, 2, [], CycleDose(1, dt.date(2024, 12, 1), 7.5, 3.0), ENROLLED)
    with pytest.raises(InputError, match="activity_gbq must be > 0"):
        check_cycle(P, 2, [], CycleDose(1, dt.date(2025, 2, 1), 0.0, 3.0), ENROLLED)
    with pytest.raises(InputError, match="kidney_gy must be > 0"):
        check_cycle(P, 2, [], CycleDose(1, dt.date(2025, 2, 1), 7.5, 0.0), ENROLLED)
    with pytest.raises(InputError, match="kidney_left_gy must be a finite number"):
        check_cycle(P, 2, [], CycleDose(1, dt.date(2025, 2, 1), 7.5, 2.0, kidney_left_gy=float("nan")), ENROLLED)
    with pytest.raises(InputError, match="arm 4 is not defined"):
        next_cycle(P, 4, [], ENROLLED)


def test_first_cycle_plan_and_limit_basis():
    nxt = next_cycle(P, 2, [], ENROLLED)
    assert nxt.allowed and nxt.max_activity_gbq == 7.5 and nxt.earliest_date == ENROLLED
    assert nxt.latest_date is None and nxt.planning_gy_per_gbq is None
    cycles = _cycles([4.0, 4.0], kidney_left_gy=3.0, kidney_right_gy=5.0)
    assert cumulative_kidney_gy(P, cycles) == 8.0
    assert cumulative_kidney_gy(replace(P, limit_basis="max_side"), cycles) == 10.0


def test_cumulative_uncertainty_and_bed_sums():
    cycles = _cycles([3.0, 5.0], uncertainty_pct=10.0, bed_gy=4.0)
    s = dose_summary(P, 2, cycles, ENROLLED)
    assert s.cumulative_uncertainty_gy == pytest.approx(0.3 + 0.5)  # fully correlated: linear sum
    assert s.cumulative_bed_gy == 8.0
    partial = [cycles[0], replace(cycles[1], uncertainty_pct=None, bed_gy=None)]
    s = dose_summary(P, 2, partial, ENROLLED)
    assert s.cumulative_uncertainty_gy is None and s.cumulative_bed_gy is None  # never a partial sum


def test_protocol_round_trip_and_validation():
    assert Protocol.from_dict(P.to_dict()) == P
    with pytest.raises(InputError, match="unknown parameter"):
        Protocol.from_dict({"limit": 30})
    with pytest.raises(InputError, match="limit_basis"):
        Protocol.from_dict({**P.to_dict(), "limit_basis": "median"})
    with pytest.raises(InputError, match="neither a dose limit nor a fixed cycle count"):
        Protocol.from_dict({**P.to_dict(), "arms": [{"arm": 3, "dose_limited": False}]})
