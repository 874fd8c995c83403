"""The trial-database record of a batch row, idempotent.

A cycle not yet in the database is recorded exactly as ``startnet run --trial-db`` records it. A
cycle already recorded with the same result (kidney doses, uncertainty, BED, activity, date) is
accepted as done, so a re-run of the batch is not an error; a cycle recorded with a different
result is an error for that row naming both values (changing it is ``startnet trial correct-cycle``,
a deliberate act with a reason, never a side effect of a batch).
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Dict, Optional

from startnet.errors import TrialRuleError

COMPARED = (("kidney_gy", "kidney_gy"), ("kidney_left_gy", "kidney_left_gy"),
            ("kidney_right_gy", "kidney_right_gy"), ("kidney_uncertainty_pct", "uncertainty_pct"),
            ("kidney_bed_gy", "bed_gy"))
REL_TOLERANCE = 1e-6


def recorded_cycle(db_url: str, patient_id: str, cycle: int) -> Optional[Dict[str, Any]]:
    """The current record of the patient's cycle, or None (the patient must be enrolled)."""
    from startnet.trial.store import TrialStore

    store = TrialStore.open(db_url)
    try:
        return next((c for c in store.cycles(patient_id) if c["cycle"] == int(cycle)), None)
    finally:
        store.close()


def _same(a: Optional[float], b: Optional[float]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=REL_TOLERANCE, abs_tol=1e-9)


def check_same_result(record: Dict[str, Any], results: Dict[str, Any], patient_id: str, cycle: int) -> None:
    """TrialRuleError when the recorded cycle differs from this result."""
    from startnet.trial.results import parse_results

    parsed = parse_results(results, "batch")
    activity_gbq = float(results["injected_activity_mbq"]) / 1000.0
    date = _dt.datetime.fromisoformat(results["injection_datetime"]).date().isoformat()
    differences = [f"{key} {record[key]} recorded, {getattr(parsed, attribute)} now"
                   for key, attribute in COMPARED if not _same(record.get(key), getattr(parsed, attribute))]
    if not _same(record.get("activity_gbq"), activity_gbq):
        differences.append(f"activity_gbq {record.get('activity_gbq')} recorded, {activity_gbq} now")
    if record.get("date") != date:
        differences.append(f"date {record.get('date')} recorded, {date} now")
    if differences:
        raise TrialRuleError(f"patient {patient_id} cycle {cycle} is already recorded with a different result ("
                             + "; ".join(differences) + "); use 'startnet trial correct-cycle' to change it")


def record_results(db_url: str, patient_id: str, cycle: int, results: Dict[str, Any], results_path: str) -> str:
    """Record a finished row's results.json (skipped rows); 'recorded' or 'already recorded'."""
    from startnet.cycle.trial_record import record_cycle_results

    existing = recorded_cycle(db_url, patient_id, cycle)
    if existing is not None:
        check_same_result(existing, results, patient_id, cycle)
        return "already recorded"
    date = _dt.datetime.fromisoformat(results["injection_datetime"]).date()
    record_cycle_results(db_url, patient_id, int(cycle), date, float(results["injected_activity_mbq"]) / 1000.0,
                         results, results_path=results_path)
    return "recorded"
