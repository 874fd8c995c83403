"""The report's lesion table (issue 14 item 2): this cycle's lesions, new/seen/not seen, cumulative from the trial."""

from __future__ import annotations

import re

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


# --- the PDF's second page (the one-page PDF had no lesion table) ---

def _pdf_pages_text(pdf, first: int, last: int) -> str:
    import shutil
    import subprocess

    assert shutil.which("pdftotext"), "poppler-utils missing: run tools/install-system-deps.sh"
    return subprocess.run(["pdftotext", "-layout", "-f", str(first), "-l", str(last), str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout


def _page_count(pdf) -> int:
    import re
    import subprocess

    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def _many_lesions(n: int):
    per_lesion = [{"id": f"L{i}", "segment": f"tumour_{i}", "mean_gy": 10.0 + i / 10, "bed_gy": 11.0 + i / 10,
                   "volume_ml": 5.0 + i, "volume_change_pct": -10.0, "d50_gy": 9.0, "d98_gy": 6.0 + i / 100}
                  for i in range(n, 0, -1)]  # stored in reverse: the PDF orders by ID
    return {"rule": RULE, "segments": {r["segment"]: r["id"] for r in per_lesion}, "new": [], "not_seen": [],
            "per_lesion": per_lesion}


def test_pdf_gets_a_second_page_with_the_lesion_table_ordered_by_id(tmp_path):
    from test_report_synthetic import synthetic_input

    from startnet.report.render import write_report

    inp = synthetic_input()
    inp.results.update(_results())
    inp.results["lesions"]["per_lesion"].append(
        {"id": "L10", "segment": "tumour_9", "mean_gy": 3.25, "bed_gy": 3.4, "volume_ml": 2.0,
         "volume_change_pct": 0.0, "d50_gy": 3.2, "d98_gy": 1.75})
    inp.results["lesions"]["new"].append("L10")
    files = write_report(inp, tmp_path / "out")
    assert _page_count(files.pdf) == 2  # no marrow doses: the page exists for the lesions
    assert "page 1 of 2" in " ".join(_pdf_pages_text(files.pdf, 1, 1).split())
    text = _pdf_pages_text(files.pdf, 2, 2)
    assert "Lesions across cycles" in text and "page 2 of 2" in text
    header = next(line for line in text.splitlines() if "Lesion" in line and "Status" in line)
    for column in ("Volume (mL)", "Mean (Gy)", "D98 (Gy)", "BED (Gy)", "Cumulative (Gy)"):
        assert column in header
    rows = {line.split()[0]: line.split() for line in text.splitlines() if re.match(r"\s*L\d+\s", line)}
    assert list(rows) == ["L1", "L4", "L5", "L10"]  # by ID, L10 after L5, the not-seen L4 in its place
    assert rows["L1"][1:5] == ["tumour_1", "seen", "44.1", "(-33"]
    assert rows["L1"][6:] == ["13.20", "13.00", "8.40", "14.10", "27.30", "29.00"]  # mean, D50, D98, BED, cumulative
    assert rows["L4"][1:3] == [MISSING, "not"] and "5.55" in rows["L4"]  # cumulative of a lesion not seen
    assert rows["L10"][2] == "new" and "1.75" in rows["L10"]
    assert "Truncated" not in text


def test_pdf_lesion_rows_that_do_not_fit_are_cut_and_the_page_says_so(tmp_path):
    from test_report_synthetic import synthetic_input

    from startnet.report.render import write_report

    inp = synthetic_input()
    inp.results["lesions"] = _many_lesions(90)
    inp.results["marrow"] = {"method": "blood-based (EANM SOP, Hindorf 2010)", "dose_gy": 0.321,
                             "self_dose_gy": 0.27, "cross_dose_gy": 0.051, "uncertainty_pct": 22.0,
                             "red_marrow_to_blood_ratio": 1.0,
                             "assumptions": {"self_dose": "D_self = TIAC_blood x RMBLR x E_electron"}}
    files = write_report(inp, tmp_path / "out")
    assert _page_count(files.pdf) == 2  # marrow and lesions share the second page
    text = _pdf_pages_text(files.pdf, 2, 2)
    assert "Red bone-marrow absorbed dose" in text and "0.321" in text and "Lesions across cycles" in text
    ids = [int(line.split()[0][1:]) for line in text.splitlines() if re.match(r"\s*L\d+\s", line)]
    assert 20 < len(ids) < 90 and ids == list(range(1, len(ids) + 1))  # the first rows by ID, none skipped
    note = " ".join(text.split())
    assert f"Truncated for lack of space: {90 - len(ids)} more lesion row(s) after L{len(ids)} not shown" in note
    assert "Lesion IDs follow the patient across cycles" in note  # the table's own note still on the page
