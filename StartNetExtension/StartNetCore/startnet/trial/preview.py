"""What recording a dosimetry result as a trial cycle would warn about, before anything is written.

The Slicer panels show these warnings (another patient ID in the result, an injected activity far
from the administered one) and ask the user to confirm *before* the record is committed; the
record itself (``record_cycle_results``) repeats the same check and stores the warnings with the
cycle's remarks.
"""

from __future__ import annotations

from typing import Any, Dict, List

from startnet.trial.results import check_matches, parse_results


def preview_cycle_results(results: Dict[str, Any], patient_id: str, cycle: int, activity_gbq: float,
                          source: str = "dosimetry result") -> List[str]:
    """Warnings of recording ``results`` as ``cycle`` of ``patient_id``; opens no database, writes nothing.

    Raises :class:`~startnet.errors.InputError` where the record would be refused (no kidney dose,
    another cycle number, malformed numbers).
    """
    parsed = parse_results(results, source)
    return check_matches(parsed, patient_id, int(cycle), float(activity_gbq))
