"""Cycle records as the API passes them in (:class:`CycleEntry`) and out (plain JSON dicts)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, List, Optional

from startnet.errors import InputError
from startnet.trial.models import AuditEntry, CycleVersion, Patient
from startnet.trial.protocol import CycleDose


@dataclass(frozen=True)
class CycleEntry:
    """One PRRT cycle as recorded (the kidney dose comes from the cycle's dosimetry)."""

    cycle: int
    date: dt.date
    activity_gbq: float                    # measured administered activity
    kidney_gy: float                       # mean absorbed dose of both kidneys
    kidney_left_gy: Optional[float] = None
    kidney_right_gy: Optional[float] = None
    kidney_uncertainty_pct: Optional[float] = None  # relative standard uncertainty of kidney_gy
    kidney_bed_gy: Optional[float] = None
    labs: Optional[Dict[str, Any]] = None  # lab values before the cycle
    capecitabine_mg_per_m2: Optional[float] = None  # arm 1: dose per administration, as prescribed
    body_surface_area_m2: Optional[float] = None
    capecitabine_days: Optional[int] = None
    capecitabine_schedule: Optional[str] = None      # e.g. "twice daily, days 1-14"
    remarks: Optional[str] = None
    dosimetry_source: Optional[str] = None           # results.json path (or other origin)
    dosimetry: Optional[Dict[str, Any]] = None       # provenance of the dosimetry result

    @property
    def capecitabine_given(self) -> bool:
        return any(v is not None for v in (self.capecitabine_mg_per_m2, self.capecitabine_days,
                                           self.capecitabine_schedule))

    def to_dose(self) -> CycleDose:
        return CycleDose(cycle=self.cycle, date=self.date, activity_gbq=self.activity_gbq,
                         kidney_gy=self.kidney_gy, kidney_left_gy=self.kidney_left_gy,
                         kidney_right_gy=self.kidney_right_gy, uncertainty_pct=self.kidney_uncertainty_pct,
                         bed_gy=self.kidney_bed_gy, capecitabine_given=self.capecitabine_given)

    def with_changes(self, changes: Dict[str, Any]) -> CycleEntry:
        allowed = {f.name for f in fields(self)} - {"cycle"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InputError(f"cycle {self.cycle}: cannot correct {', '.join(unknown)}; "
                             f"correctable fields: {', '.join(sorted(allowed))}")
        return replace(self, **changes)


def _loads(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


def dumps(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def utc_text(value: Optional[dt.datetime]) -> Optional[str]:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def entry_from_version(v: CycleVersion) -> CycleEntry:
    return CycleEntry(
        cycle=v.cycle, date=v.date, activity_gbq=v.activity_gbq, kidney_gy=v.kidney_gy,
        kidney_left_gy=v.kidney_left_gy, kidney_right_gy=v.kidney_right_gy,
        kidney_uncertainty_pct=v.kidney_uncertainty_pct, kidney_bed_gy=v.kidney_bed_gy,
        labs=_loads(v.labs_json), capecitabine_mg_per_m2=v.capecitabine_mg_per_m2,
        body_surface_area_m2=v.body_surface_area_m2, capecitabine_days=v.capecitabine_days,
        capecitabine_schedule=v.capecitabine_schedule, remarks=v.remarks,
        dosimetry_source=v.dosimetry_source, dosimetry=_loads(v.dosimetry_json))


def apply_entry(v: CycleVersion, e: CycleEntry) -> None:
    v.cycle, v.date, v.activity_gbq, v.kidney_gy = e.cycle, e.date, float(e.activity_gbq), float(e.kidney_gy)
    v.kidney_left_gy, v.kidney_right_gy = e.kidney_left_gy, e.kidney_right_gy
    v.kidney_uncertainty_pct, v.kidney_bed_gy = e.kidney_uncertainty_pct, e.kidney_bed_gy
    v.labs_json = dumps(e.labs)
    v.capecitabine_mg_per_m2, v.body_surface_area_m2 = e.capecitabine_mg_per_m2, e.body_surface_area_m2
    v.capecitabine_days, v.capecitabine_schedule = e.capecitabine_days, e.capecitabine_schedule
    v.remarks, v.dosimetry_source, v.dosimetry_json = e.remarks, e.dosimetry_source, dumps(e.dosimetry)


def cycle_dict(v: CycleVersion) -> Dict[str, Any]:
    capecitabine = None
    if any(x is not None for x in (v.capecitabine_mg_per_m2, v.capecitabine_days, v.capecitabine_schedule)):
        capecitabine = {"dose_mg_per_m2": v.capecitabine_mg_per_m2, "body_surface_area_m2": v.body_surface_area_m2,
                        "days_given": v.capecitabine_days, "schedule": v.capecitabine_schedule}
    return {
        "cycle": v.cycle, "version": v.version, "current": bool(v.current),
        "date": v.date.isoformat(), "activity_gbq": v.activity_gbq,
        "kidney_gy": v.kidney_gy, "kidney_left_gy": v.kidney_left_gy, "kidney_right_gy": v.kidney_right_gy,
        "kidney_uncertainty_pct": v.kidney_uncertainty_pct, "kidney_bed_gy": v.kidney_bed_gy,
        "gy_per_gbq": round(v.kidney_gy / v.activity_gbq, 9),
        "labs": _loads(v.labs_json), "capecitabine": capecitabine, "remarks": v.remarks,
        "dosimetry_source": v.dosimetry_source, "dosimetry": _loads(v.dosimetry_json),
        **_marrow_and_haematology(v),
        "deviations": _loads(v.deviations_json) or [], "deviation_reason": v.deviation_reason,
        "correction_reason": v.correction_reason,
        "later_cycle_warnings": _loads(v.later_cycle_warnings_json) or [],
        "recorded_at_utc": utc_text(v.recorded_at_utc), "recorded_by": v.recorded_by,
    }


def _marrow_and_haematology(v: CycleVersion) -> Dict[str, Any]:
    """Derived views (``startnet.trial.marrow``): the marrow doses recorded with the dosimetry, the blood counts."""
    from startnet.trial.marrow import haematology

    dosimetry = _loads(v.dosimetry_json)
    marrow = dosimetry.get("marrow") if isinstance(dosimetry, dict) else None
    return {"marrow": marrow, "haematology": haematology(_loads(v.labs_json))}


def patient_dict(p: Patient) -> Dict[str, Any]:
    return {"patient": p.patient_id, "patient_id": p.patient_id, "site": p.site, "arm": p.arm,
            "enrolled": p.enrolled.isoformat(),
            "eligibility": _loads(p.eligibility_json), "created_at_utc": utc_text(p.created_at_utc),
            "created_by": p.created_by}


def row_json(obj: Any, exclude: tuple = ("current",)) -> Dict[str, Any]:
    """A stored row as the audit trail holds it: column -> JSON value (what PostgreSQL's
    ``to_jsonb(row)`` gives; dates ISO, timestamps UTC ISO), without the derived ``current`` flag."""
    out: Dict[str, Any] = {}
    for column in obj.__table__.columns:
        if column.name in exclude:
            continue
        value = getattr(obj, column.name)
        if isinstance(value, dt.datetime):
            value = utc_text(value)
        elif isinstance(value, dt.date):
            value = value.isoformat()
        out[column.name] = value
    return out


def audit_dict(a: AuditEntry) -> Dict[str, Any]:
    return {"id": a.id, "at_utc": utc_text(a.at_utc), "user": a.user_name, "user_site": a.user_site,
            "action": a.action, "entity": a.entity, "entity_key": a.entity_key, "patient": a.patient_id,
            "old": _loads(a.old_json), "new": _loads(a.new_json)}


CSV_COLUMNS: List[str] = [
    "patient_id", "site", "arm", "enrolled", "cycle", "version", "current", "date", "activity_gbq",
    "kidney_gy", "kidney_left_gy", "kidney_right_gy", "kidney_uncertainty_pct", "kidney_bed_gy",
    "gy_per_gbq", "cumulative_kidney_gy", "capecitabine_mg_per_m2", "body_surface_area_m2",
    "capecitabine_days", "deviations", "deviation_reason", "correction_reason", "dosimetry_source",
    "remarks", "recorded_at_utc", "recorded_by",
]
