"""OUT_DIR/summary.csv: one line per cycle and structure, and one line for a failed cycle.

Columns (contract): name, patient_id, cycle, structure, mean_gy, uncertainty_gy, tia_mbq_h,
effective_half_life_h, bed_gy, gy_per_gbq, status, error. ``gy_per_gbq`` is the structure's mean
absorbed dose per injected GBq. ``status`` is done (computed by this invocation), skipped (its
outputs were current) or failed (``error`` holds the one-line reason). Written atomically.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, Iterable, List

from startnet.batch.task import RowOutcome
from startnet.filelock import write_text_atomic

SUMMARY_COLUMNS = ("name", "patient_id", "cycle", "structure", "mean_gy", "uncertainty_gy", "tia_mbq_h",
                   "effective_half_life_h", "bed_gy", "gy_per_gbq", "status", "error")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def summary_lines(outcomes: Iterable[RowOutcome]) -> List[Dict[str, str]]:
    lines = []
    for outcome in outcomes:
        record = outcome.record
        base = {"name": outcome.name, "patient_id": _cell(record.get("patient_id")),
                "cycle": _cell(record.get("cycle")), "status": outcome.status, "error": outcome.error}
        structures = record.get("structures") or {}
        if not structures:
            lines.append({**{c: "" for c in SUMMARY_COLUMNS}, **base})
            continue
        activity_gbq = (record.get("injected_activity_mbq") or 0.0) / 1000.0
        for structure, values in structures.items():
            mean = values.get("mean_gy")
            per_gbq = round(mean / activity_gbq, 6) if mean is not None and activity_gbq > 0 else None
            lines.append({**base, "structure": structure, **{k: _cell(values.get(k)) for k in (
                "mean_gy", "uncertainty_gy", "tia_mbq_h", "effective_half_life_h", "bed_gy")},
                "gy_per_gbq": _cell(per_gbq)})
    return lines


def write_summary(out_dir: str, outcomes: Iterable[RowOutcome]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_lines(outcomes))
    path = Path(out_dir) / "summary.csv"
    write_text_atomic(path, buffer.getvalue())
    return path
