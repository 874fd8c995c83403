"""The report's lesion section: this cycle's lesions with their identity across cycles.

From ``results.json`` ``lesions`` (:func:`startnet.lesions.table.cycle_record`: the cycle's lesion IDs,
which are new, which earlier lesions were not seen, and per lesion its dose, volume and D50/D98) and,
when the cycle was recorded in the trial, the patient's cumulative dose and BED per lesion from
``trial.lesions`` (:func:`startnet.lesions.table.trial_lesion_summary`). Absent without lesion
tracking. Shown in the HTML report and on the PDF's second page (:mod:`startnet.report.pdf_page2`, rows
ordered by ID and cut, with a note, when they do not fit).
"""

from __future__ import annotations

import html
from typing import Callable, Dict, Mapping, Optional

from startnet.report import fmt
from startnet.report.tables import Table

TITLE = "Lesions across cycles"


def _cumulative(results: Mapping) -> Dict[str, Mapping]:
    trial = results.get("trial") or {}
    return {str(lesion.get("id")): lesion for lesion in trial.get("lesions") or [] if isinstance(lesion, Mapping)}


def _volume(row: Mapping) -> str:
    volume = fmt.number(row.get("volume_ml"))
    if volume is None:
        return fmt.MISSING
    change = fmt.number(row.get("volume_change_pct"))
    return f"{volume:.1f}" + ("" if change is None or change == 0 else f" ({change:+.0f} %)")


def lesion_table(results: Mapping) -> Optional[Table]:
    """One row per lesion of this cycle (new or seen before) and per earlier lesion not seen; None without tracking."""
    record = results.get("lesions")
    if not isinstance(record, Mapping):
        return None
    cumulative = _cumulative(results)
    new = {str(i) for i in record.get("new") or []}
    rows = []
    for row in record.get("per_lesion") or []:
        lesion_id = str(row.get("id"))
        total = cumulative.get(lesion_id) or {}
        rows.append([lesion_id, str(row.get("segment") or fmt.MISSING), "new" if lesion_id in new else "seen",
                     _volume(row), fmt.gy(row.get("mean_gy")), fmt.gy(row.get("d50_gy")), fmt.gy(row.get("d98_gy")),
                     fmt.gy(row.get("bed_gy")), fmt.gy(total.get("cumulative_mean_gy")),
                     fmt.gy(total.get("cumulative_bed_gy"))])
    for lesion_id in record.get("not_seen") or []:
        total = cumulative.get(str(lesion_id)) or {}
        rows.append([str(lesion_id), fmt.MISSING, "not seen", fmt.MISSING, fmt.MISSING, fmt.MISSING, fmt.MISSING,
                     fmt.MISSING, fmt.gy(total.get("cumulative_mean_gy")), fmt.gy(total.get("cumulative_bed_gy"))])
    if not rows:
        return None
    rule = record.get("rule")
    rule_text = str(rule.get("rule") or "") if isinstance(rule, Mapping) else ""
    return Table(["Lesion", "Segment", "Status", "Volume (mL)", "Mean (Gy)", "D50 (Gy)", "D98 (Gy)", "BED (Gy)",
                  "Cumulative (Gy)", "Cumulative BED (Gy)"], rows,
                 ["l", "l", "l", "r", "r", "r", "r", "r", "r", "r"], [0.7, 1.1, 0.8, 1.0, 0.8, 0.8, 0.8, 0.8, 1.0, 1.1],
                 note="Lesion IDs follow the patient across cycles (matched through the CT-to-CT registration"
                      + (f": {rule_text}" if rule_text else "") + "). Volume change against the cycle the lesion "
                      "was first seen in. Cumulative values from the trial record (sum over the cycles the lesion "
                      "was seen in); a dash where the cycle was not recorded.")


def lesion_html(results: Mapping, table_html: Callable[[Table], str]) -> str:
    """The HTML section (empty without lesion tracking); ``table_html`` renders a Table as the report does."""
    table = lesion_table(results)
    return "" if table is None else f"<h2>{html.escape(TITLE)}</h2>{table_html(table)}"
