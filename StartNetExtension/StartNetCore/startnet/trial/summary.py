"""Derived views of the trial database: a patient's status, CSV export, consistency check."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any, Dict, List, Optional, TextIO

from sqlalchemy import func, select

from startnet.trial.integrity import check_audit
from startnet.trial.marrow import METHODS as MARROW_METHODS
from startnet.trial.marrow import cumulative_marrow, marrow_rows
from startnet.trial.models import AuditEntry, CycleVersion, Patient
from startnet.trial.protocol import CycleDose, dose_summary
from startnet.trial.records import CSV_COLUMNS
from startnet.trial.store import TrialStore


def _dose(c: Dict[str, Any]) -> CycleDose:
    return CycleDose(cycle=c["cycle"], date=dt.date.fromisoformat(c["date"]), activity_gbq=c["activity_gbq"],
                     kidney_gy=c["kidney_gy"], kidney_left_gy=c["kidney_left_gy"],
                     kidney_right_gy=c["kidney_right_gy"], uncertainty_pct=c["kidney_uncertainty_pct"],
                     bed_gy=c["kidney_bed_gy"], capecitabine_given=c["capecitabine"] is not None)


def _iso(d: Optional[dt.date]) -> Optional[str]:
    return None if d is None else d.isoformat()


def status(store: TrialStore, patient_id: str) -> Dict[str, Any]:
    """Cumulative and remaining kidney dose, the cycles, and what the next cycle may be."""
    from startnet.lesions.table import trial_lesion_summary

    patient = store.patient(patient_id)
    cycles = store.cycles(patient_id)
    protocol = store.protocol
    rules = protocol.arm_rules(patient["arm"])
    doses = [_dose(c) for c in cycles]
    summary = dose_summary(protocol, patient["arm"], doses, dt.date.fromisoformat(patient["enrolled"]))
    running = 0.0
    rows = []
    marrow = marrow_rows(cycles)
    for c, d, m in zip(cycles, doses, marrow):
        running += d.limit_dose_gy(protocol.limit_basis)
        rows.append({**c, "cumulative_kidney_gy": round(running, 9),
                     "cumulative_marrow_gy": {k: m[f"cumulative_marrow_{k}_gy"] for k in MARROW_METHODS}})
    nxt = summary.next_cycle
    return {
        "patient": patient["patient"], "patient_id": patient["patient"], "site": patient["site"],
        "arm": patient["arm"],
        "enrolled": patient["enrolled"],
        "limit_gy": summary.limit_gy,
        "limit_basis": protocol.limit_basis,
        "dose_limited": rules.dose_limited,
        "cumulative_kidney_gy": summary.cumulative_kidney_gy,
        "remaining_kidney_gy": summary.remaining_kidney_gy,
        "limit_exceeded_by_gy": summary.limit_exceeded_by_gy,
        "cumulative_kidney_uncertainty_gy": summary.cumulative_uncertainty_gy,
        "cumulative_kidney_bed_gy": summary.cumulative_bed_gy,
        "nominal_activity_gbq": protocol.nominal_activity_gbq,
        "cycles": rows,
        "deviations": [{"cycle": c["cycle"], **d, "reason": c["deviation_reason"]}
                       for c in cycles for d in c["deviations"]],
        "next_cycle": {
            "cycle": nxt.cycle, "allowed": nxt.allowed, "max_activity_gbq": nxt.max_activity_gbq,
            "earliest_date": _iso(nxt.earliest_date), "latest_date": _iso(nxt.latest_date),
            "reason": nxt.reason, "planning_gy_per_gbq": nxt.planning_gy_per_gbq,
            # planning under uncertainty (trial/planning.py): P(true cumulative > limit) at
            # max_activity_gbq, the activity keeping it <= 5 %, the flag of an expected last cycle
            "probability_limit_exceeded": nxt.probability_limit_exceeded,
            "max_activity_gbq_95": nxt.max_activity_gbq_95,
            "last_cycle_expected": nxt.last_cycle_expected,
            "planning_confidence": protocol.planning_confidence,
            "planning_cv": nxt.planning_cv, "planning_cv_source": nxt.planning_cv_source,
        },
        "eligibility": patient["eligibility"],
        # per lesion over the cycles recorded with lesion tracking (startnet.lesions): dose, cumulative dose, BED
        "lesions": trial_lesion_summary(cycles),
        "marrow": cumulative_marrow(cycles),
    }


def export_rows(store: TrialStore, all_versions: bool = False) -> List[Dict[str, Any]]:
    """One row per cycle (per version with ``all_versions``) of every patient the user may see."""
    out: List[Dict[str, Any]] = []
    basis = store.protocol.limit_basis
    for p in store.patients():
        running = 0.0
        for c in store.cycles(p["patient"], all_versions=all_versions):
            if c["current"]:
                running += _dose(c).limit_dose_gy(basis)
            cap = c["capecitabine"] or {}
            out.append({
                "patient_id": p["patient"], "site": p["site"], "arm": p["arm"], "enrolled": p["enrolled"],
                **{k: c[k] for k in ("cycle", "version", "current", "date", "activity_gbq", "kidney_gy",
                                     "kidney_left_gy", "kidney_right_gy", "kidney_uncertainty_pct",
                                     "kidney_bed_gy", "gy_per_gbq", "deviation_reason", "correction_reason",
                                     "dosimetry_source", "remarks", "recorded_at_utc", "recorded_by")},
                "cumulative_kidney_gy": round(running, 9) if c["current"] else None,
                "capecitabine_mg_per_m2": cap.get("dose_mg_per_m2"),
                "body_surface_area_m2": cap.get("body_surface_area_m2"),
                "capecitabine_days": cap.get("days_given"),
                "deviations": ";".join(d["code"] for d in c["deviations"]),
            })
    return out


def write_csv(rows: List[Dict[str, Any]], stream: TextIO) -> None:
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_COLUMNS})


def export_csv_text(store: TrialStore, all_versions: bool = False) -> str:
    buf = io.StringIO()
    write_csv(export_rows(store, all_versions), buf)
    return buf.getvalue()


def check_consistency(store: TrialStore) -> List[str]:
    """Invariants a killed or racing writer must never break; returns the problems found.

    Every cycle has exactly one current version and versions 1..n; every patient's current
    cycles are numbered 1..n; every cycle version and patient has its audit entry; the audit hash
    chain is intact and every row equals what its audit entry recorded (:mod:`.integrity`).
    """
    problems: List[str] = []
    with store._read() as s:
        versions = list(s.scalars(select(CycleVersion).order_by(CycleVersion.patient_pk, CycleVersion.cycle,
                                                                CycleVersion.version)))
        patients = {p.id: p.patient_id for p in s.scalars(select(Patient))}
        audit_counts: Dict[tuple, int] = {}
        for action, key, n in s.execute(select(AuditEntry.action, AuditEntry.entity_key, func.count())
                                        .group_by(AuditEntry.action, AuditEntry.entity_key)):
            audit_counts[(action, key)] = n
    by_cycle: Dict[tuple, List[CycleVersion]] = {}
    for v in versions:
        by_cycle.setdefault((v.patient_pk, v.cycle), []).append(v)
    numbers: Dict[int, List[int]] = {}
    for (pk, cycle), vs in by_cycle.items():
        pid = patients.get(pk, f"#{pk}")
        key = f"{pid}/cycle {cycle}"
        if [v.version for v in vs] != list(range(1, len(vs) + 1)):
            problems.append(f"{key}: versions {[v.version for v in vs]} are not 1..{len(vs)}")
        n_current = sum(1 for v in vs if v.current)
        if n_current != 1:
            problems.append(f"{key}: {n_current} current versions")
        if audit_counts.get(("add_cycle", key), 0) != 1:
            problems.append(f"{key}: {audit_counts.get(('add_cycle', key), 0)} add_cycle audit entries")
        if audit_counts.get(("correct_cycle", key), 0) != len(vs) - 1:
            problems.append(f"{key}: {len(vs) - 1} corrections but "
                            f"{audit_counts.get(('correct_cycle', key), 0)} correct_cycle audit entries")
        numbers.setdefault(pk, []).append(cycle)
    for pk, cycles in numbers.items():
        if sorted(cycles) != list(range(1, len(cycles) + 1)):
            problems.append(f"{patients.get(pk)}: cycle numbers {sorted(cycles)} are not 1..{len(cycles)}")
    for pid in patients.values():
        if audit_counts.get(("enroll", pid), 0) != 1:
            problems.append(f"{pid}: {audit_counts.get(('enroll', pid), 0)} enroll audit entries")
    problems.extend(check_audit(store)[0])
    return problems


def history(store: TrialStore, patient_id: str) -> Dict[str, Any]:
    """All versions of every cycle and the patient's audit trail (nothing is ever overwritten)."""
    versions = store.cycles(patient_id, all_versions=True)
    return {"patient": store.patient(patient_id),
            "versions": versions,
            "marrow": cumulative_marrow([v for v in versions if v["current"]]),
            "audit": store.audit_trail(patient_id)}


def dumps_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
