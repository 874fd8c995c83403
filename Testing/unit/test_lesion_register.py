"""Lesion register: stable IDs across cycles through the CT-to-CT transform, new / not seen, overrides, tables."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.errors import InputError
from startnet.lesions.match import MatchRule, pair_metrics
from startnet.lesions.sources import ComposedTransforms, read_lesion_map
from startnet.lesions.table import csv_text, cycle_record, lesion_rows, trial_lesion_summary
from startnet.lesions.track import CycleLesions, track_lesions

SPACING_MM = 4.0


def _grid() -> sitk.Image:
    image = sitk.Image(48, 48, 48, sitk.sitkFloat32)
    image.SetSpacing((SPACING_MM,) * 3)
    image.SetOrigin((-94.0, -94.0, -94.0))
    return image


def _sphere(grid: sitk.Image, centre_mm, radius_mm) -> np.ndarray:
    size = grid.GetSize()
    axes = [grid.GetOrigin()[a] + SPACING_MM * np.arange(size[a]) for a in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (z - centre_mm[2]) ** 2 <= radius_mm ** 2


def _cycle(number, shift_mm, lesions, overrides=None, assigned=None):
    """``lesions``: segment -> (centre in the reference pose, radius, mean dose); the patient lies shifted."""
    grid = _grid()
    masks, values = {}, {}
    for name, (centre, radius, dose) in lesions.items():
        masks[name] = _sphere(grid, np.add(centre, shift_mm), radius)
        volume = float(masks[name].sum()) * SPACING_MM ** 3 / 1000.0
        values[name] = {"mean_gy": dose, "bed_gy": 1.1 * dose, "volume_ml": volume, "d50_gy": dose,
                        "d98_gy": 0.8 * dose}
    return CycleLesions(number, f"cycle{number}", grid, masks, values, assigned=assigned,
                        overrides=dict(overrides or {}))


def _translations(shifts):
    return ComposedTransforms([sitk.TranslationTransform(3, tuple(float(v) for v in s)) for s in shifts])


A, B, C, NEW = (-30.0, 0.0, 0.0), (10.0, 0.0, 0.0), (0.0, 40.0, 20.0), (0.0, -45.0, -30.0)
SHIFTS = [(0.0, 0.0, 0.0), (40.0, -8.0, 6.0), (-12.0, 10.0, -4.0)]


def _three_cycles(**kwargs):
    # cycle 1: A, B, C; cycle 2: A and B shrink, C is gone, a new lesion; names renumbered per cycle
    # and the patient lying 40 mm to the left, so A sits where B was on the scanner's grid
    one = _cycle(1, SHIFTS[0], {"tumour_1": (A, 18, 10.0), "tumour_2": (B, 12, 8.0), "tumour_3": (C, 10, 5.0)})
    two = _cycle(2, SHIFTS[1], {"lesion 1": (A, 15, 9.0), "lesion 2": (B, 9, 7.0), "lesion 3": (NEW, 14, 6.0)},
                 **kwargs)
    three = _cycle(3, SHIFTS[2], {"tumour_1": (A, 12, 8.0), "tumour_2": (NEW, 13, 5.0)})
    return [one, two, three]


def test_identity_kept_through_the_registration_new_and_not_seen_reported():
    register = track_lesions(_three_cycles(), _translations(SHIFTS))
    cycles = {c["cycle"]: c for c in register["cycles"]}
    assert cycles[1]["segments"] == {"tumour_1": "L1", "tumour_2": "L2", "tumour_3": "L3"}
    assert cycles[2]["segments"] == {"lesion 1": "L1", "lesion 2": "L2", "lesion 3": "L4"}
    assert cycles[2]["new"] == ["L4"] and cycles[2]["not_seen"] == ["L3"]
    assert cycles[3]["segments"] == {"tumour_1": "L1", "tumour_2": "L4"}
    assert cycles[3]["not_seen"] == ["L2", "L3"] and cycles[3]["new"] == []
    lesions = {row["id"]: row for row in register["lesions"]}
    assert lesions["L1"]["cumulative_mean_gy"] == pytest.approx(27.0)
    assert lesions["L1"]["cumulative_bed_gy"] == pytest.approx(1.1 * 27.0)
    assert lesions["L4"]["cumulative_mean_gy"] == pytest.approx(11.0) and lesions["L4"]["first_cycle"] == 2
    assert lesions["L3"]["status"] == "not seen" and lesions["L3"]["not_seen_in"] == [2, 3]
    assert lesions["L2"]["cycles_seen"] == [1, 2] and lesions["L2"]["not_seen_in"] == [3]
    # response: volume change against the first cycle the lesion was seen in
    assert lesions["L1"]["cycles"][2]["volume_change_pct"] < -60
    match = next(m for m in cycles[2]["matches"] if m["segment"] == "lesion 1")
    assert match["how"] == "matched" and match["overlap_fraction"] > 0.9 and match["centroid_distance_mm"] < 2
    assert "overlap_fraction >= 0.3" in register["rule"]["rule"]


def test_without_the_registration_the_shifted_lesion_would_be_taken_for_another():
    identity = ComposedTransforms([sitk.TranslationTransform(3)] * 3)
    register = track_lesions(_three_cycles(), identity)
    assert register["cycles"][1]["segments"]["lesion 1"] != "L1"  # the test's shift is a real trap


def test_user_overrides_a_match_and_names_a_new_lesion():
    register = track_lesions(_three_cycles(overrides={"lesion 3": "L3", "lesion 2": "L9"}), _translations(SHIFTS))
    two = register["cycles"][1]
    assert two["segments"] == {"lesion 1": "L1", "lesion 2": "L9", "lesion 3": "L3"}
    assert {m["segment"]: m["how"] for m in two["matches"]} == {
        "lesion 3": "override", "lesion 2": "override (new lesion)", "lesion 1": "matched"}
    assert two["not_seen"] == ["L2"] and two["new"] == ["L9"]
    # cycle 3's second segment follows the lesion it now overlaps: L3 (the user's identity of cycle 2)
    assert register["cycles"][2]["segments"] == {"tumour_1": "L1", "tumour_2": "L3"}


@pytest.mark.parametrize("overrides, message", [({"lesion 9": "L1"}, "segment 'lesion 9' is not a tumour segment"),
                                                ({"lesion 1": "L 1"}, "lesion ID 'L 1'"),
                                                ({"lesion 1": "L5", "lesion 2": "L5"}, "both given lesion L5")])
def test_bad_overrides_are_refused_with_one_line(overrides, message):
    with pytest.raises(InputError, match=message):
        track_lesions(_three_cycles(overrides=overrides), _translations(SHIFTS))


def test_recorded_ids_are_kept_and_the_next_cycle_is_matched_against_them():
    cycles = _three_cycles(assigned={"lesion 1": "L1", "lesion 2": "L2", "lesion 3": "L7"})
    register = track_lesions(cycles, _translations(SHIFTS))
    assert register["cycles"][1]["segments"]["lesion 3"] == "L7"
    assert register["cycles"][2]["segments"] == {"tumour_1": "L1", "tumour_2": "L7"}
    with pytest.raises(InputError, match="do not name segment"):
        track_lesions(_three_cycles(assigned={"lesion 1": "L1"}), _translations(SHIFTS))


def test_one_to_one_the_better_of_two_segments_keeps_the_identity():
    one = _cycle(1, (0, 0, 0), {"t1": (A, 16, 10.0)})
    # two segments near the earlier lesion: one on it, one 12 mm away (within the centroid distance)
    two = _cycle(2, (0, 0, 0), {"off": ((-18.0, 0.0, 0.0), 6, 3.0), "on": (A, 14, 9.0)})
    register = track_lesions([one, two], _translations([(0, 0, 0)] * 2))
    assert register["cycles"][1]["segments"] == {"off": "L2", "on": "L1"}
    candidates = {c["segment"]: c for c in register["cycles"][1]["candidates"]}
    assert candidates["off"]["candidate"] and candidates["on"]["candidate"]


def test_match_rule_and_metrics():
    grid = _grid()
    big, small = _sphere(grid, A, 16), _sphere(grid, A, 8)
    metrics = pair_metrics(big, small, grid)
    assert metrics["overlap_fraction"] == 1.0 and metrics["dice"] < 0.3 and metrics["centroid_distance_mm"] < 1
    with pytest.raises(InputError, match="min_overlap"):
        MatchRule(min_overlap=0.0)
    register = track_lesions([_cycle(1, (0, 0, 0), {"t": (A, 10, 1.0)}), _cycle(2, (0, 0, 0), {"t": (B, 10, 1.0)})],
                             _translations([(0, 0, 0)] * 2), MatchRule(max_centroid_mm=45.0))
    assert register["cycles"][1]["segments"] == {"t": "L1"}  # 40 mm apart: one lesion under a 45 mm rule


def test_tables_csv_cycle_record_and_trial_summary():
    register = track_lesions(_three_cycles(), _translations(SHIFTS))
    rows = lesion_rows(register)
    l3 = [r for r in rows if r["lesion"] == "L3"]
    assert [r["status"] for r in l3] == ["new", "not seen", "not seen"]
    assert [r["cumulative_mean_gy"] for r in rows if r["lesion"] == "L1"] == [10.0, 19.0, 27.0]
    text = csv_text(rows)
    assert text.splitlines()[0].startswith("lesion,cycle,segment,status") and len(text.splitlines()) == len(rows) + 1
    records = [cycle_record(register, n) for n in (1, 2, 3)]
    assert records[1]["not_seen"] == ["L3"] and {p["id"] for p in records[1]["per_lesion"]} == {"L1", "L2", "L4"}
    trial_cycles = [{"cycle": n, "dosimetry": {"lesions": r}} for n, r in zip((1, 2, 3), records)]
    trial_cycles.append({"cycle": 4, "dosimetry": {}})  # a cycle recorded without lesions
    summary = {s["id"]: s for s in trial_lesion_summary(trial_cycles)}
    assert summary["L1"]["cumulative_mean_gy"] == pytest.approx(27.0) and summary["L1"]["status"] == "seen"
    assert summary["L3"]["status"] == "not seen" and summary["L3"]["not_seen_in"] == [2, 3]
    assert summary["L4"]["first_cycle"] == 2 and summary["L4"]["cycles_without_lesions"] == [4]


def test_lesion_map_file(tmp_path):
    path = tmp_path / "map.json"
    path.write_text('{"2": {"lesion 3": "L3"}}')
    assert read_lesion_map(str(path)) == {"2": {"lesion 3": "L3"}}
    path.write_text('{"lesion 3": "L3"}')
    assert read_lesion_map(str(path)) == {"*": {"lesion 3": "L3"}}
    path.write_text('{"two": {"lesion 3": "L3"}}')
    with pytest.raises(InputError, match="not a cycle number"):
        read_lesion_map(str(path))
    with pytest.raises(InputError, match="file not found"):
        read_lesion_map(str(tmp_path / "none.json"))


def test_accumulate_lesion_map_checks_and_missing_seg_is_a_warning(tmp_path):
    from startnet.lesions.runs import cycle_numbers, register_for_runs

    runs = [{"folder": tmp_path, "results": {"cycle": n, "structures": {"tumour_1": {"mean_gy": 1.0}}},
             "dose": _grid()} for n in (1, 2)]
    assert cycle_numbers([r["results"] for r in runs]) == [1, 2]
    assert cycle_numbers([{"cycle": 3}, {"cycle": 3}]) == [1, 2]  # repeated numbers: the order given
    flat = tmp_path / "flat.json"
    flat.write_text('{"tumour_1": "L1"}')
    with pytest.raises(InputError, match="with several cycles give"):
        register_for_runs(runs, [sitk.Euler3DTransform()] * 2, str(flat))
    other = tmp_path / "other.json"
    other.write_text('{"5": {"tumour_1": "L1"}}')
    with pytest.raises(InputError, match=r"cycle\(s\) 5 not among the runs"):
        register_for_runs(runs, [sitk.Euler3DTransform()] * 2, str(other))
    register, warnings = register_for_runs(runs, [sitk.Euler3DTransform()] * 2)
    assert register is None and "lesions not tracked" in warnings[0] and "no seg.dcm" in warnings[0]


def test_run_lesion_map_option_reaches_the_cycle_record(tmp_path):
    from types import SimpleNamespace

    from startnet.cli import build_parser
    from startnet.cycle.options import option_values, run_options
    from startnet.lesions.update import lesions_for_run

    path = tmp_path / "map.json"
    path.write_text('{"tumour_2": "L7"}')
    args = build_parser().parse_args(["run", "IN", "--out", str(tmp_path / "out"), "--lesion-map", str(path),
                                      "--cycle", "2"])
    options = run_options(option_values(args), "IN", str(tmp_path / "out"))
    assert options.lesion_map_path == str(path)
    cycle = _cycle(2, (0, 0, 0), {"tumour_1": (A, 14, 9.0), "tumour_2": (B, 9, 7.0), "liver": (C, 20, 1.0)})
    masks = {**cycle.masks, "liver": _sphere(cycle.grid, C, 20)}
    result = SimpleNamespace(registered=SimpleNamespace(reference_grid=cycle.grid),
                             structures=SimpleNamespace(masks=masks), analysis=SimpleNamespace(ct_hu_on_grid=None),
                             results={"structures": {**cycle.values, "liver": {"mean_gy": 1.0}}})
    record, warnings = lesions_for_run(options, result)
    assert record["segments"] == {"tumour_1": "L1", "tumour_2": "L7"} and warnings == []
    assert {p["id"]: p["mean_gy"] for p in record["per_lesion"]} == {"L1": 9.0, "L7": 7.0}
