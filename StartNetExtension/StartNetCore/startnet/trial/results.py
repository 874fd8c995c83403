"""Read a cycle's kidney dose from the dosimetry pipeline's ``results.json``.

Keys used: ``kidneys_mean_gy`` (mean absorbed dose of both kidneys; if absent, the mass-weighted
mean of ``structures.kidney_left/kidney_right.mean_gy`` when both masses are given),
``structures.kidney_left.mean_gy`` / ``structures.kidney_right.mean_gy``,
``kidneys_uncertainty_pct`` (or top-level ``uncertainty_pct``), ``kidneys_bed_gy`` (or
``bed_gy``), and for provenance ``schema_version``, ``software``, ``method``, ``patient_id``,
``cycle``, ``injected_activity_mbq``, ``injection_datetime``, ``provenance``, ``warnings``, ``lesions``
(the cycle's lesion IDs and per-lesion doses, :mod:`startnet.lesions`), and the red-marrow doses of
the ``marrow`` block (a short summary, :mod:`startnet.trial.marrow`).
The file's SHA-256 is stored with the cycle so that the exact result can be found again.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from startnet.errors import InputError

PROVENANCE_KEYS = ("schema_version", "software", "method", "patient_id", "cycle", "injected_activity_mbq",
                   "injection_datetime", "provenance", "warnings", "lesions")


@dataclass(frozen=True)
class DosimetryResult:
    kidney_gy: float
    kidney_left_gy: Optional[float]
    kidney_right_gy: Optional[float]
    uncertainty_pct: Optional[float]
    bed_gy: Optional[float]
    patient_id: Optional[str]
    cycle: Optional[int]
    injected_activity_mbq: Optional[float]
    source: str
    provenance: Dict[str, Any]

    def to_entry(self, cycle: int, date, activity_gbq: float, **extra: Any):
        """A :class:`~startnet.trial.records.CycleEntry` carrying this dose and its provenance."""
        from startnet.trial.records import CycleEntry

        return CycleEntry(cycle=cycle, date=date, activity_gbq=activity_gbq, kidney_gy=self.kidney_gy,
                          kidney_left_gy=self.kidney_left_gy, kidney_right_gy=self.kidney_right_gy,
                          kidney_uncertainty_pct=self.uncertainty_pct, kidney_bed_gy=self.bed_gy,
                          dosimetry_source=self.source, dosimetry=self.provenance, **extra)


def _number(value: Any, where: str, label: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{label}: {where} must be a finite number >= 0, got {value!r}")
    return float(value)


def load_results(path: str) -> DosimetryResult:
    """Read ``results.json``; the file's SHA-256 and absolute path go into the provenance."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"results file {path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"results file {path}: not readable JSON ({exc})") from None
    result = parse_results(data, str(p.resolve()), label=f"results file {path}")
    result.provenance["sha256"] = hashlib.sha256(raw).hexdigest()
    result.provenance["file"] = result.source
    return result


def parse_results(data: Dict[str, Any], source: str, label: Optional[str] = None) -> DosimetryResult:
    """The kidney dose and provenance of an in-memory results dict (``source`` names its origin)."""
    path = label or f"dosimetry result {source}"
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    structures = data.get("structures") or {}
    if not isinstance(structures, dict):
        raise InputError(f"{path}: 'structures' must be an object")
    sides = {}
    masses = {}
    for side in ("kidney_left", "kidney_right"):
        s = structures.get(side) or {}
        sides[side] = _number(s.get("mean_gy"), f"structures.{side}.mean_gy", path)
        masses[side] = _number(s.get("mass_g"), f"structures.{side}.mass_g", path)
    mean = _number(data.get("kidneys_mean_gy"), "kidneys_mean_gy", path)
    derived = False
    if mean is None:
        if None in sides.values() or None in masses.values() or not sum(masses.values()) > 0:
            raise InputError(f"{path}: no kidney dose (expected 'kidneys_mean_gy', or "
                             f"structures.kidney_left/kidney_right with mean_gy and mass_g)")
        mean = sum(sides[k] * masses[k] for k in sides) / sum(masses.values())
        derived = True
    unc = data.get("kidneys_uncertainty_pct", data.get("uncertainty_pct"))
    bed = data.get("kidneys_bed_gy", data.get("bed_gy"))
    cycle = data.get("cycle")
    if cycle is not None and (isinstance(cycle, bool) or not isinstance(cycle, int)):
        raise InputError(f"{path}: 'cycle' must be an integer or null, got {cycle!r}")
    patient = data.get("patient_id")
    provenance = {k: data[k] for k in PROVENANCE_KEYS if k in data}
    if data.get("marrow") is not None:
        from startnet.trial.marrow import marrow_summary

        provenance["marrow"] = marrow_summary(data["marrow"], path)
    if derived:
        provenance["kidneys_mean_gy_derived"] = "mass-weighted mean of kidney_left and kidney_right"
    return DosimetryResult(
        kidney_gy=mean, kidney_left_gy=sides["kidney_left"], kidney_right_gy=sides["kidney_right"],
        uncertainty_pct=_number(unc, "kidneys_uncertainty_pct", path), bed_gy=_number(bed, "kidneys_bed_gy", path),
        patient_id=None if patient is None else str(patient), cycle=cycle,
        injected_activity_mbq=_number(data.get("injected_activity_mbq"), "injected_activity_mbq", path),
        source=source, provenance=provenance,
    )


def check_matches(result: DosimetryResult, patient_id: str, cycle: int, activity_gbq: float,
                  tolerance_fraction: float = 0.05) -> List[str]:
    """Compare a dosimetry result with the cycle it is recorded as.

    A different cycle number is refused. A different patient ID or an injected activity more than
    ``tolerance_fraction`` away from the administered one are returned as warnings (the caller
    shows them and stores them with the cycle): the pipeline may have been run without the trial
    pseudonym (its ``patient_id`` is then the DICOM PatientID) and DICOM often holds the
    prescribed rather than the measured activity.
    """
    if result.cycle is not None and result.cycle != cycle:
        raise InputError(f"dosimetry result {result.source}: cycle {result.cycle} is not {cycle}")
    warnings: List[str] = []
    if result.patient_id is not None and result.patient_id != patient_id:
        warnings.append(f"dosimetry result patient_id {result.patient_id!r} is not the trial patient {patient_id!r}")
    if result.injected_activity_mbq:
        given_mbq = activity_gbq * 1000.0
        if abs(given_mbq - result.injected_activity_mbq) > tolerance_fraction * result.injected_activity_mbq:
            warnings.append(f"dosimetry result injected_activity_mbq {result.injected_activity_mbq:g} MBq differs "
                            f"from the administered {activity_gbq:g} GBq by more than {tolerance_fraction:.0%}")
    if warnings:
        result.provenance["record_warnings"] = list(warnings)
    return warnings
