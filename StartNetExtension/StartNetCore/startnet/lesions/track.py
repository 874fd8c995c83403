"""The patient's lesion register: tumour segments of successive cycles given stable lesion IDs.

Cycles are taken in treatment order. A cycle whose segments already carry recorded IDs
(``CycleLesions.assigned``, e.g. from the trial database) keeps them; any other cycle's segments
are matched (:mod:`startnet.lesions.match`) against every lesion known so far, each lesion in the
cycle where it was last seen, its mask mapped onto this cycle's dose grid with the CT-to-CT
transform ``transform_between(this, that)`` (this cycle's points -> that cycle's points). User
overrides (segment -> ID) are applied first: an existing ID forces the match, an unknown ID starts
a lesion with that ID. Segments left unmatched become new lesions ``L<n>`` (in segment order, the
lowest numbers no lesion of the patient has had); known lesions with no segment in the cycle are
reported as not seen.

Per lesion and cycle the segment's mean dose, BED, volume, D50 and D98 are copied from the cycle's
results; the cumulative dose and BED are the sums over the cycles where the lesion was seen
(full repair between cycles, as ``startnet accumulate`` sums BED; a lesion not seen adds nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.errors import InputError
from startnet.lesions.match import MatchRule, assign, is_candidate, pair_metrics

VALUE_KEYS = ("mean_gy", "bed_gy", "eqd2_gy", "volume_ml", "d50_gy", "d98_gy", "uncertainty_pct")
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")

TransformBetween = Callable[[int, int], sitk.Transform]


@dataclass
class CycleLesions:
    """One cycle's tumour segments on its dose grid with their results.json values."""

    cycle: int  # treatment cycle number (orders the cycles)
    label: str  # where it came from (run folder), for messages
    grid: sitk.Image  # the cycle's dose grid
    masks: Dict[str, np.ndarray]  # tumour segment -> (z, y, x) bool mask on ``grid``
    values: Dict[str, Dict[str, Any]]  # segment -> its results.json structure entry
    assigned: Optional[Dict[str, str]] = None  # recorded segment -> lesion ID: kept, not matched again
    overrides: Dict[str, str] = field(default_factory=dict)  # user's segment -> lesion ID


def _mapped(mask: np.ndarray, source_grid: sitk.Image, target_grid: sitk.Image,
            transform: sitk.Transform) -> np.ndarray:
    image = sitk.GetImageFromArray(mask.astype(np.float32))
    image.CopyInformation(source_grid)
    moved = sitk.Resample(image, target_grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(moved) >= 0.5


def _free_numbers(ids):
    """1, 2, ... skipping every number an ``L<n>`` in ``ids`` already has (an ID is never given twice)."""
    used = {int(m.group(1)) for m in (re.match(r"^L(\d+)$", i) for i in ids) if m}
    number = 1
    while True:
        if number not in used:
            yield number
        number += 1


def _check_ids(cycle: CycleLesions, mapping: Mapping[str, str], what: str) -> None:
    for segment, lesion in mapping.items():
        if segment not in cycle.masks:
            raise InputError(f"{what} for cycle {cycle.cycle}: segment '{segment}' is not a tumour segment of "
                             f"{cycle.label} (tumour segments: {', '.join(cycle.masks) or 'none'})")
        if not isinstance(lesion, str) or not ID_PATTERN.match(lesion):
            raise InputError(f"{what} for cycle {cycle.cycle}: lesion ID {lesion!r} of segment '{segment}'; "
                             "expected 1-32 letters, digits, '_', '.' or '-' (e.g. L3)")
    seen: Dict[str, str] = {}
    for segment, lesion in mapping.items():
        if lesion in seen:
            raise InputError(f"{what} for cycle {cycle.cycle}: segments '{seen[lesion]}' and '{segment}' "
                             f"both given lesion {lesion}")
        seen[lesion] = segment


def _values(entry: Mapping[str, Any]) -> Dict[str, Any]:
    return {key: entry.get(key) for key in VALUE_KEYS}


def track_lesions(cycles: Sequence[CycleLesions], transform_between: TransformBetween,
                  rule: Optional[MatchRule] = None, reserved_ids=()) -> Dict[str, Any]:
    """The register (JSON-ready) of ``cycles``; see the module doc.

    ``reserved_ids``: IDs of lesions known elsewhere (an earlier cycle that could not be read) that a
    new lesion must not take.
    """
    rule = rule or MatchRule()
    order = sorted(range(len(cycles)), key=lambda i: cycles[i].cycle)
    numbers = [cycles[i].cycle for i in order]
    if len(set(numbers)) != len(numbers):
        raise InputError(f"lesion register: cycle numbers {numbers} repeat; expected one result per cycle")
    last_seen: Dict[str, Tuple[int, str]] = {}  # lesion ID -> (index into cycles, segment) where last seen
    per_cycle: List[Dict[str, Any]] = []
    lesions: Dict[str, Dict[str, Any]] = {}
    for k in order:
        cycle = cycles[k]
        _check_ids(cycle, cycle.overrides, "--lesion-map")
        entry: Dict[str, Any] = {"cycle": cycle.cycle, "source": cycle.label, "segments": {}, "matches": [],
                                 "new": [], "not_seen": []}
        if cycle.assigned is not None:
            _check_ids(cycle, cycle.assigned, "recorded lesion IDs")
            missing = [s for s in cycle.masks if s not in cycle.assigned]
            if missing:
                raise InputError(f"recorded lesion IDs for cycle {cycle.cycle} ({cycle.label}) do not name "
                                 f"segment(s) {', '.join(missing)}")
            segments = {s: cycle.overrides.get(s, cycle.assigned[s]) for s in cycle.masks}
            _check_ids(cycle, segments, "recorded lesion IDs with --lesion-map")
            entry["matches"] = [{"segment": s, "lesion": i, "how": "override" if s in cycle.overrides else "recorded"}
                                for s, i in segments.items()]
        else:
            segments = _match_cycle(cycles, k, last_seen, transform_between, rule, entry, set(reserved_ids))
        for segment, lesion in segments.items():
            if lesion not in last_seen:
                entry["new"].append(lesion)
            last_seen[lesion] = (k, segment)
            record = lesions.setdefault(lesion, {"id": lesion, "first_cycle": cycle.cycle, "cycles": []})
            record["cycles"].append({"cycle": cycle.cycle, "segment": segment, **_values(cycle.values[segment])})
        entry["segments"] = segments
        entry["not_seen"] = sorted((i for i in last_seen if i not in segments.values()), key=_sort_key)
        per_cycle.append(entry)
    last = per_cycle[-1] if per_cycle else None
    table = [_summary(lesions[i], numbers, last) for i in sorted(lesions, key=_sort_key)]
    return {"rule": rule.describe(), "cumulative": "sum over the cycles where the lesion was seen (full repair "
            "between cycles); a cycle where it was not seen adds nothing", "cycles": per_cycle, "lesions": table}


def _sort_key(lesion_id: str):
    match = re.match(r"^L(\d+)$", lesion_id)
    return (0, int(match.group(1)), "") if match else (1, 0, lesion_id)


def _match_cycle(cycles: Sequence[CycleLesions], k: int, last_seen: Dict[str, Tuple[int, str]],
                 transform_between: TransformBetween, rule: MatchRule, entry: Dict[str, Any],
                 reserved) -> Dict[str, str]:
    cycle = cycles[k]
    segments: Dict[str, str] = {}
    taken = set()
    for segment, lesion in cycle.overrides.items():
        segments[segment] = lesion
        taken.add(lesion)
        entry["matches"].append({"segment": segment, "lesion": lesion, "how": "override" if lesion in last_seen
                                 else "override (new lesion)"})
    open_lesions = [i for i in last_seen if i not in taken]
    open_segments = [s for s in cycle.masks if s not in segments]
    metrics: Dict[Tuple[str, str], Dict[str, float]] = {}
    by_cycle: Dict[int, List[str]] = {}
    for lesion in open_lesions:
        by_cycle.setdefault(last_seen[lesion][0], []).append(lesion)
    for j, ids in by_cycle.items():
        earlier = cycles[j]
        transform = transform_between(k, j)
        for lesion in ids:
            moved = _mapped(earlier.masks[last_seen[lesion][1]], earlier.grid, cycle.grid, transform)
            for segment in open_segments:
                if moved.any():
                    metrics[(lesion, segment)] = {**pair_metrics(moved, cycle.masks[segment], cycle.grid),
                                                  "compared_with_cycle": earlier.cycle}
    chosen = assign(metrics, open_lesions, open_segments, rule)
    for segment, lesion in chosen.items():
        segments[segment] = lesion
        entry["matches"].append({"segment": segment, "lesion": lesion, "how": "matched", **metrics[(lesion, segment)]})
    entry["candidates"] = [{"lesion": lesion, "segment": segment, "candidate": is_candidate(m, rule), **m}
                           for (lesion, segment), m in metrics.items()]
    free = _free_numbers(list(last_seen) + list(segments.values()) + list(reserved))
    for segment in open_segments:
        if segment not in segments:
            segments[segment] = f"L{next(free)}"
    return {s: segments[s] for s in cycle.masks}


def _summary(record: Dict[str, Any], numbers: List[int], last: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    rows = record["cycles"]

    def total(key: str) -> Optional[float]:
        values = [r.get(key) for r in rows]
        if any(v is None or not np.isfinite(v) for v in values):
            return None
        return round(float(sum(values)), 4)

    first_volume = rows[0].get("volume_ml")
    for r in rows:
        volume = r.get("volume_ml")
        r["volume_change_pct"] = (round(100.0 * (volume / first_volume - 1.0), 1)
                                  if volume is not None and first_volume else None)
    seen = [r["cycle"] for r in rows]
    if last is None:
        status = "seen"
    elif record["id"] in last["new"]:
        status = "new"
    elif record["id"] in last["segments"].values():
        status = "seen"
    else:
        status = "not seen"
    return {"id": record["id"], "first_cycle": record["first_cycle"], "cycles_seen": seen,
            "not_seen_in": [n for n in numbers if n > record["first_cycle"] and n not in seen],
            "status": status, "cumulative_mean_gy": total("mean_gy"), "cumulative_bed_gy": total("bed_gy"),
            "cycles": rows}
