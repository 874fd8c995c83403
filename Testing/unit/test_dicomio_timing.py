"""dicomio timing: time zones, daylight-saving changes, injection fallbacks (elapsed hours exact)."""

from __future__ import annotations

import datetime as dt

import dicom_factory as f
import numpy as np
import pydicom
import pytest

from startnet.dicomio import Overrides, load_cycle
from startnet.dicomio.timing import parse_dt, parse_tm
from startnet.errors import InputError

UTC = dt.timezone.utc
VOL = np.zeros((6, 8, 8), np.uint16)
VOL[2:4, 2:6, 2:6] = 100


def write_cycle(root, injection, scans, offsets=None, **kwargs):
    for i, scan in enumerate(scans):
        tz = offsets[i] if offsets else None
        f.spect_and_ct(str(root / f"tp{i}"), VOL, acquisition=scan, injection=injection, tz_offset=tz,
                       spect_origin=(-32.0, -32.0, -24.0), ct_shape=(14, 20, 20), **kwargs)


def hours(cycle):
    return [tp.hours_post_injection for tp in cycle.timepoints]


def test_october_dst_change_without_timezone_offset(tmp_path):
    # Saturday 24 Oct 2026 10:00 CEST; clocks go back on Sunday 25 Oct 03:00 -> 02:00.
    inj = dt.datetime(2026, 10, 24, 10, 0, 0)
    scans = [dt.datetime(2026, 10, 24, 14, 0, 0), dt.datetime(2026, 10, 26, 10, 0, 0),
             dt.datetime(2026, 10, 31, 10, 0, 0)]
    write_cycle(tmp_path, inj, scans)
    cycle = load_cycle(str(tmp_path))
    assert hours(cycle) == [4.0, 49.0, 169.0]
    assert cycle.injection_datetime == dt.datetime(2026, 10, 24, 8, 0, 0, tzinfo=UTC)
    assert cycle.timepoints[1].acquisition_datetime == dt.datetime(2026, 10, 26, 9, 0, 0, tzinfo=UTC)
    assert "no TimezoneOffsetFromUTC" in cycle.timepoints[0].conversion["timezone_source"]


def test_october_dst_change_with_swedish_timezone_offsets(tmp_path):
    inj = dt.datetime(2026, 10, 24, 10, 0, 0)
    scans = [dt.datetime(2026, 10, 24, 14, 0, 0), dt.datetime(2026, 10, 26, 10, 0, 0)]
    write_cycle(tmp_path, inj, scans, offsets=["+0200", "+0100"])
    cycle = load_cycle(str(tmp_path))
    assert hours(cycle) == [4.0, 49.0]
    assert not [w for w in cycle.warnings if "disagrees" in w]


def test_march_dst_change(tmp_path):
    # Saturday 28 Mar 2026 10:00 CET; clocks go forward on Sunday 29 Mar 02:00 -> 03:00.
    inj = dt.datetime(2026, 3, 28, 10, 0, 0)
    write_cycle(tmp_path, inj, [dt.datetime(2026, 3, 30, 10, 0, 0)])
    assert hours(load_cycle(str(tmp_path))) == [47.0]


def test_seconds_and_fractions_kept(tmp_path):
    inj = dt.datetime(2026, 6, 1, 9, 59, 31)
    scan = dt.datetime(2026, 6, 2, 10, 14, 2, 500000)
    write_cycle(tmp_path, inj, [scan])
    cycle = load_cycle(str(tmp_path))
    assert cycle.timepoints[0].hours_post_injection == pytest.approx((scan - inj).total_seconds() / 3600, abs=1e-12)
    assert cycle.timepoints[0].acquisition_datetime == dt.datetime(2026, 6, 2, 8, 14, 2, 500000, tzinfo=UTC)


def test_offset_disagreeing_with_zone_is_used_with_warning(tmp_path):
    inj = dt.datetime(2026, 6, 1, 10, 0, 0)
    write_cycle(tmp_path, inj, [dt.datetime(2026, 6, 2, 10, 0, 0)], offsets=["-0500"])
    cycle = load_cycle(str(tmp_path))
    assert cycle.injection_datetime == dt.datetime(2026, 6, 1, 15, 0, 0, tzinfo=UTC)
    assert hours(cycle) == [24.0]
    assert any("TimezoneOffsetFromUTC -0500 disagrees" in w for w in cycle.warnings)


def test_configured_timezone_used_without_offset(tmp_path):
    inj = dt.datetime(2026, 10, 31, 12, 0, 0)  # US DST ends 1 Nov 2026
    write_cycle(tmp_path, inj, [dt.datetime(2026, 11, 2, 12, 0, 0)])
    cycle = load_cycle(str(tmp_path), Overrides(timezone="America/New_York"))
    assert cycle.injection_datetime == dt.datetime(2026, 10, 31, 16, 0, 0, tzinfo=UTC)
    assert hours(cycle) == [49.0]
    with pytest.raises(InputError, match="Mars/Olympus"):
        load_cycle(str(tmp_path), Overrides(timezone="Mars/Olympus"))


def test_explicit_offset_in_injection_datetime(tmp_path):
    item = f.radiopharm_item(None)
    item.RadiopharmaceuticalStartDateTime = "20260601100000+0000"
    f.spect_and_ct(str(tmp_path), VOL, acquisition=dt.datetime(2026, 6, 1, 16, 0, 0), injection=None,
                   radiopharm=item, spect_origin=(-32.0, -32.0, -24.0), ct_shape=(14, 20, 20))
    cycle = load_cycle(str(tmp_path))
    assert cycle.injection_datetime == dt.datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)
    assert hours(cycle) == [4.0]  # 16:00 CEST = 14:00 UTC


def test_injection_time_only_date_inferred(tmp_path):
    inj = dt.datetime(2026, 6, 1, 14, 0, 0)
    scans = [dt.datetime(2026, 6, 2, 10, 0, 0), dt.datetime(2026, 6, 5, 10, 0, 0)]
    write_cycle(tmp_path, inj, scans)
    for path in (tmp_path).rglob("spect"):
        ds = pydicom.dcmread(path)
        del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime
        ds.save_as(path)
    cycle = load_cycle(str(tmp_path))
    assert hours(cycle) == [20.0, 92.0]
    assert any("inferred" in w for w in cycle.warnings)
    assert "RadiopharmaceuticalStartTime" in cycle.injection_source


def test_ambiguous_local_time_warns(tmp_path):
    inj = dt.datetime(2026, 10, 24, 10, 0, 0)
    write_cycle(tmp_path, inj, [dt.datetime(2026, 10, 25, 2, 30, 0)])
    cycle = load_cycle(str(tmp_path))
    assert hours(cycle) == [16.5]  # fold=0: 02:30 CEST = 00:30 UTC, injection 08:00 UTC the day before
    assert any("ambiguous or does not exist" in w for w in cycle.warnings)


def test_naive_override_rejected():
    with pytest.raises(InputError, match="no time zone"):
        Overrides(injection_datetime=dt.datetime(2026, 1, 1, 10, 0))
    with pytest.raises(InputError, match="calibration_cps_per_mbq"):
        Overrides(calibration_cps_per_mbq=-1.0)


def test_parsers():
    assert parse_tm("101502.25", "x", "T") == dt.time(10, 15, 2, 250000)
    assert parse_tm("1015", "x", "T") == dt.time(10, 15)
    assert parse_tm("10:15:02", "x", "T") == dt.time(10, 15, 2)
    naive, offset = parse_dt("20261024100000.5-0130", "x", "D")
    assert naive == dt.datetime(2026, 10, 24, 10, 0, 0, 500000)
    assert offset.utcoffset(None) == -dt.timedelta(hours=1, minutes=30)
