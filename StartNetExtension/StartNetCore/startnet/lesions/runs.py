"""The lesion register of ``startnet accumulate``: every run folder's tumour segments, in cycle order.

Cycles are numbered by their results' ``cycle`` when every run has a distinct one, else 1, 2, ... in
the order given. The transforms are those accumulate registered (reference cycle -> each cycle),
composed for any pair. IDs a run already carries (``results["lesions"]["segments"]``, from
``startnet run --trial-db``) are kept, so the register agrees with the trial database;
``--lesion-map`` overrides per cycle (``{"<cycle>": {segment: ID}}``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import SimpleITK as sitk

from startnet.errors import InputError
from startnet.lesions.sources import ComposedTransforms, cycle_from_folder, read_lesion_map, recorded_ids
from startnet.lesions.track import track_lesions


def cycle_numbers(results: Sequence[Mapping[str, Any]]) -> List[int]:
    numbers = [r.get("cycle") for r in results]
    if all(isinstance(n, int) and not isinstance(n, bool) for n in numbers) and len(set(numbers)) == len(numbers):
        return [int(n) for n in numbers]
    return list(range(1, len(results) + 1))


def register_for_runs(runs: Sequence[Mapping[str, Any]], to_cycle: Sequence[sitk.Transform],
                      lesion_map_path: Optional[str] = None) -> Tuple[Optional[Dict[str, Any]], List[str]]:
    """(register or None, warnings) for accumulate's loaded runs (folder, results, dose) and transforms."""
    lesion_map = read_lesion_map(lesion_map_path)
    numbers = cycle_numbers([r["results"] for r in runs])
    if "*" in lesion_map:
        raise InputError(f"--lesion-map {lesion_map_path}: with several cycles give {{cycle: {{segment: ID}}}} "
                         f"(cycles {', '.join(map(str, numbers))})")
    unknown = [k for k in lesion_map if int(k) not in numbers]
    if unknown:
        raise InputError(f"--lesion-map {lesion_map_path}: cycle(s) {', '.join(unknown)} not among the runs "
                         f"(cycles {', '.join(map(str, numbers))})")
    try:
        cycles = [cycle_from_folder(r["folder"], n, r["results"], r["dose"], assigned=recorded_ids(r["results"]),
                                    overrides=lesion_map.get(str(n)))
                  for r, n in zip(runs, numbers)]
    except InputError as exc:
        if lesion_map:
            raise
        return None, [f"lesions not tracked: {exc}"]
    if not any(c.masks for c in cycles):
        return None, []
    return track_lesions(cycles, ComposedTransforms(to_cycle)), []
