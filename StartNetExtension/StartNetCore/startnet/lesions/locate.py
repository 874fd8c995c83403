"""Where an earlier cycle's run folder is now, when it is no longer at the path the trial database recorded.

The trial database records each cycle's ``results.json`` path (``dosimetry_source``) and a copy of
its provenance (``dosimetry``: ``patient_id``, ``cycle``, ``injection_datetime``, the SPECT series UIDs
under ``provenance.input.timepoints``, and the file's ``sha256`` when it was recorded from a file).
Folders move (an archive share, a core lab re-running on another machine), so the earlier run is
looked for, in this order, the first place that has it deciding:

1. the recorded folder, when its ``results.json`` is that run (or nothing identifies the run);
2. ``--previous-runs DIR``, searched recursively;
3. the folders beside this run's output folder (the children of its parent).

A candidate is the recorded run only by what its ``results.json`` says, never by its folder's name:
the same SHA-256 when one was recorded, else the same patient ID, cycle and SPECT series UIDs (and
injection date/time when both give one). Two different folders that both qualify in one place are
refused (:class:`AmbiguousRunError`): which copy holds the tumour masks the lesion IDs were given to
cannot be decided here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from startnet.errors import InputError

RESULTS_FILE = "results.json"


class AmbiguousRunError(InputError):
    """More than one folder holds the earlier run the trial database recorded."""


@dataclass(frozen=True)
class RunIdentity:
    """What identifies a recorded run: its results' SHA-256, else patient, cycle, SPECT series (and injection)."""

    cycle: int
    patient_id: Optional[str]
    spect_series_uids: Tuple[str, ...]
    injection_datetime: Optional[str]
    sha256: Optional[str]

    @property
    def identifiable(self) -> bool:
        return bool(self.sha256) or (bool(self.spect_series_uids) and self.patient_id is not None)

    def describe(self) -> str:
        if self.sha256:
            return f"results.json SHA-256 {self.sha256[:12]}..."
        uids = self.spect_series_uids
        series = "not recorded" if not uids else uids[0] + (f" and {len(uids) - 1} more" if len(uids) > 1 else "")
        return f"patient {self.patient_id}, cycle {self.cycle}, SPECT series {series}"

    def matches(self, raw: bytes, data: Mapping[str, Any]) -> bool:
        if self.sha256:
            return hashlib.sha256(raw).hexdigest() == self.sha256
        if not self.identifiable or data.get("cycle") != self.cycle:
            return False
        if data.get("patient_id") is None or str(data.get("patient_id")) != self.patient_id:
            return False
        if spect_series_uids(data) != self.spect_series_uids:
            return False
        other = data.get("injection_datetime")
        return self.injection_datetime is None or other is None or str(other) == self.injection_datetime


def spect_series_uids(results: Mapping[str, Any]) -> Tuple[str, ...]:
    """The SPECT series UIDs of a result (``timepoints``, else ``provenance.input.timepoints``), sorted."""
    uids = [tp.get("series_instance_uid") for tp in results.get("timepoints") or [] if isinstance(tp, Mapping)]
    if not any(uids):
        provenance = results.get("provenance") if isinstance(results.get("provenance"), Mapping) else {}
        source = provenance.get("input") if isinstance(provenance.get("input"), Mapping) else {}
        uids = [tp.get("spect_series_uid") for tp in source.get("timepoints") or [] if isinstance(tp, Mapping)]
    return tuple(sorted(str(u) for u in uids if u))


def recorded_identity(record: Mapping[str, Any]) -> RunIdentity:
    """The identity of a trial database cycle's run, from its stored dosimetry provenance."""
    stored = record.get("dosimetry") if isinstance(record.get("dosimetry"), Mapping) else {}
    patient = stored.get("patient_id")
    injection = stored.get("injection_datetime")
    return RunIdentity(cycle=int(record["cycle"]), patient_id=None if patient is None else str(patient),
                       spect_series_uids=spect_series_uids(stored),
                       injection_datetime=None if injection is None else str(injection),
                       sha256=str(stored["sha256"]) if stored.get("sha256") else None)


def _read(path: Path) -> Optional[Tuple[bytes, Dict[str, Any]]]:
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return (raw, data) if isinstance(data, dict) else None


def _walk(root: Path) -> Iterator[Path]:
    """Every results.json under ``root`` (hidden and staging folders skipped), in a stable order."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if RESULTS_FILE in files:
            yield Path(folder) / RESULTS_FILE


def _siblings(out_dir: Path) -> Iterator[Path]:
    parent = out_dir.resolve().parent
    try:
        children = sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        if child.resolve() != out_dir.resolve() and (child / RESULTS_FILE).is_file():
            yield child / RESULTS_FILE


def _matching(identity: RunIdentity, candidates: Iterator[Path]) -> List[Path]:
    found: Dict[Path, Path] = {}
    for path in candidates:
        read = _read(path)
        if read is not None and identity.matches(*read):
            found.setdefault(path.parent.resolve(), path.parent)
    return list(found.values())


def locate_earlier_run(record: Mapping[str, Any], out_dir: Optional[str],
                       previous_runs: Optional[str] = None) -> Tuple[Optional[Path], str]:
    """(folder of the recorded run or None, how it was found or why not) for a trial database cycle record.

    Raises :class:`AmbiguousRunError` when two folders in the place searched both hold the run.
    """
    source = record.get("dosimetry_source")
    recorded = Path(source).parent if source else None
    identity = recorded_identity(record)
    if recorded is not None and (recorded / RESULTS_FILE).is_file():
        read = _read(recorded / RESULTS_FILE)
        if not identity.identifiable or (read is not None and identity.matches(*read)):
            return recorded, "recorded folder"
        why = (f"{recorded / RESULTS_FILE}: not readable JSON" if read is None
               else f"{recorded} holds another run than the one recorded ({identity.describe()})")
    else:
        why = f"{recorded or 'no folder recorded'}: no {RESULTS_FILE}"
    if not identity.identifiable:
        return None, (f"{why}; the trial database records neither the results' SHA-256 nor the patient and SPECT "
                      "series UIDs, so a moved run folder cannot be identified")
    places = []
    if previous_runs:
        places.append((f"--previous-runs {previous_runs}", _walk(Path(previous_runs))))
    if out_dir:
        places.append((f"the folders beside {out_dir}", _siblings(Path(out_dir))))
    for label, candidates in places:
        found = _matching(identity, candidates)
        if len(found) > 1:
            raise AmbiguousRunError(
                f"cycle {identity.cycle} ({identity.describe()}): {len(found)} run folders in {label} hold the "
                f"recorded run ({', '.join(map(str, found))}); keep one, or give --previous-runs the folder of "
                "the right copy")
        if found:
            return found[0], f"moved: found in {label} ({why})"
    searched = " and ".join(label for label, _ in places) or "nowhere else (no output folder)"
    return None, f"{why}; not found in {searched} by {identity.describe()}"
