"""Records a cycle's dosimetry result in the trial tracker (``startnet run --trial-db``)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Dict, Optional

from startnet.errors import InputError


def record_cycle_results(db_url: str, patient_id: str, cycle: int, date: _dt.date, activity_gbq: float,
                         results: Dict[str, Any], results_path: Optional[str] = None) -> Dict[str, Any]:
    """Add the cycle with its kidney doses to the trial database; return the patient's status."""
    from startnet.trial.records import CycleEntry
    from startnet.trial.store import TrialStore
    from startnet.trial.summary import status

    if results.get("kidneys_mean_gy") is None:
        raise InputError("--trial-db: this run has no kidney dose (no kidney_left/kidney_right structure), "
                         "so the cycle cannot be recorded against the kidney limit")
    structures = results.get("structures", {})
    entry = CycleEntry(
        cycle=int(cycle), date=date, activity_gbq=float(activity_gbq),
        kidney_gy=float(results["kidneys_mean_gy"]),
        kidney_left_gy=(structures.get("kidney_left") or {}).get("mean_gy"),
        kidney_right_gy=(structures.get("kidney_right") or {}).get("mean_gy"),
        kidney_uncertainty_pct=results.get("kidneys_uncertainty_pct"),
        kidney_bed_gy=results.get("kidneys_bed_gy"),
        dosimetry_source=str(Path(results_path).resolve()) if results_path else "startnet run",
        dosimetry={"software": results.get("software"), "method": results.get("method"),
                   "timepoints": [tp.get("series_instance_uid") for tp in results.get("timepoints", [])]},
    )
    store = TrialStore.open(db_url)
    try:
        store.add_cycle(patient_id, entry)
        return status(store, patient_id)
    finally:
        store.close()
