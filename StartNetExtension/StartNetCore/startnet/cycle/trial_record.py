"""Records a cycle's dosimetry result in the trial tracker (``startnet run --trial-db``, Slicer modules)."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, List, Optional, Tuple


def record_cycle_results(db_url: str, patient_id: str, cycle: int, date: _dt.date, activity_gbq: float,
                         results: Dict[str, Any], results_path: Optional[str] = None, *,
                         deviation_reason: Optional[str] = None, user: Optional[str] = None
                         ) -> Tuple[Dict[str, Any], List[str]]:
    """Add the cycle with the result's kidney doses, uncertainty, BED and provenance.

    Returns the patient's status after the cycle and the warnings of the match between the result
    and the cycle (another patient ID in the DICOM, an injected activity far from the administered
    one); the warnings are also stored with the cycle's remarks.
    """
    from startnet.trial.identity import current_user
    from startnet.trial.results import check_matches, parse_results
    from startnet.trial.store import TrialStore
    from startnet.trial.summary import status

    parsed = parse_results(results, results_path or "startnet run")
    warnings = check_matches(parsed, patient_id, int(cycle), float(activity_gbq))
    remarks = "; ".join(warnings) or None
    entry = parsed.to_entry(int(cycle), date, float(activity_gbq), remarks=remarks)
    store = TrialStore.open(db_url, current_user(user) if user else None)
    try:
        store.add_cycle(patient_id, entry, deviation_reason=deviation_reason)
        return status(store, patient_id), warnings
    finally:
        store.close()
