"""The report's lesion table (issue 14 item 2): this cycle's lesions, new/seen/not seen, cumulative from the trial."""

from __future__ import annotations

from startnet.report.fmt import MISSING
from startnet.report.html import _table_html
from startnet.report.lesions import lesion_html, lesion_table

RULE = {"min_overlap_fraction": 0.3, "max_centroid_distance_mm": 15.0,
        "rule": "same lesion when overlap_fraction >= 0.3 or centroid distance <= 15 mm"}


def _results(with_trial: bool = True):
    results = {"lesions": {
        "rule": RULE, "segments": {"tumour_1": "L1", "tumour_4": "L5"}, "new": ["L5"], "not_seen": ["L4"],
        "per_lesion": [
            {"id": "L1", "segment": "tumour_1", "mean_gy": 13.2, "bed_gy": 14.1, "volume_ml": 44.1,
             "volume_change_pct": -32.8, "d50_gy": 13.0, "d98_gy": 8.4},
            {"id": "L5", "segment": "tumour_4", "mean_gy": 11.6, "bed_gy": 12.3, "volume_ml": 20.5,
             "volume_change_pct": 0.0, "d50_gy": 11.5, "d98_gy": 7.9}]}}
    if with_trial:
        results["trial"] = {"lesions": [
            {"id": "L1", "cumulative_mean_gy": 27.3, "cumulative_bed_gy": 29.0},
            {"id": "L4", "cumulative_mean_gy": 5.55, "cumulative_bed_gy": 5.7},
            {"id": "L5", "cumulative_mean_gy": 11.6, "cumulative_bed_gy": 12.3}]}
    return results


def test_rows_for_seen_new_and_not_seen_lesions_with_cumulative_dose():
    table = lesion_table(_results())
    rows = {row[0]: row for row in table.rows}
    assert [row[0] for row in table.rows] == ["L1", "L5", "L4"]
    assert rows["L1"][1:4] == ["tumour_1", "seen", "44.1 (-33 %)"]
    assert rows["L5"][2] == "new" and rows["L5"][3] == "20.5"  # no change shown on first sight
    assert rows["L4"][2] == "not seen" and rows["L4"][4] == MISSING
    assert rows["L1"][8] != MISSING and rows["L4"][8] != MISSING  # cumulative from the trial record
    assert "overlap_fraction >= 0.3" in table.note


def test_without_a_trial_record_the_cumulative_columns_are_dashes_and_without_tracking_no_section():
    table = lesion_table(_results(with_trial=False))
    assert all(row[8] == MISSING and row[9] == MISSING for row in table.rows)
    assert lesion_table({"structures": {}}) is None and lesion_html({"structures": {}}, _table_html) == ""
    page = lesion_html(_results(), _table_html)
    assert "Lesions across cycles" in page and "L5" in page and "not seen" in page
