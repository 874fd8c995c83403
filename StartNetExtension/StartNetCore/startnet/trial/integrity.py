"""Tamper evidence: the audit hash chain and every stored row against its audit entry.

``check_audit`` recomputes the hash chain (``audit_chain.py``) over all audit rows, then compares
each patient and each cycle version with the row its audit entry recorded when it was written
(``enroll``/``add_cycle``/``correct_cycle``; the derived ``current`` flag excluded). A row changed
afterwards -- also by the owner or a superuser with the triggers disabled -- is named with the
columns that differ; a row without an audit entry is named too. Audit entries written before
migration 0003 (no stored row ``id``) are covered by the chain only.

On PostgreSQL a site user sees only its own site's audit rows, so the check needs a
coordinator, a monitor or the owner.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import Boolean, Date, DateTime, Float, Integer, select

from startnet.errors import TrialRuleError
from startnet.trial.audit_chain import FIELDS, head, utc_text, verify_chain
from startnet.trial.models import AuditEntry, CycleVersion, Patient

_TIMESTAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d(?::?\d\d)?)?$")


def _timestamp(value: Any) -> Optional[str]:
    if value is None or isinstance(value, dt.datetime):
        return utc_text(value)
    m = _TIMESTAMP.match(str(value).strip())
    if m is None:
        return str(value)
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0"))
    zone = m.group(8)
    offset = dt.timedelta(0)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return utc_text(dt.datetime(y, mo, d, h, mi, s, micro, tzinfo=dt.timezone(offset)))


def _normal(column, value: Any) -> Any:
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, DateTime):
        return _timestamp(value)
    if isinstance(kind, Date):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if isinstance(kind, Boolean):
        return bool(value)
    if isinstance(kind, Float):
        return float(value)
    if isinstance(kind, Integer):
        return int(value)
    return str(value)


def _same(column, a: Any, b: Any) -> bool:
    a, b = _normal(column, a), _normal(column, b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)  # text round trips of float8
    return a == b


def _differences(obj: Any, recorded: Dict[str, Any]) -> List[str]:
    return [c.name for c in obj.__table__.columns
            if c.name != "current" and not _same(c, getattr(obj, c.name), recorded.get(c.name))]


def _loads(text: Optional[str]) -> Optional[Dict[str, Any]]:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def check_audit(store) -> Tuple[List[str], Dict[str, Any]]:
    """(problems, summary with ``audit_rows`` and ``head_hash``)."""
    if store.is_postgresql and store.user.role == "site":
        raise TrialRuleError(f"user {store.user.name!r} sees only site {store.user.site}'s audit rows; the audit "
                             f"trail is checked by a coordinator, a monitor or the owner")
    with store._read() as s:
        audit = [dict(zip(FIELDS + ("prev_hash", "row_hash"), row)) for row in s.execute(
            select(*[getattr(AuditEntry, f) for f in FIELDS], AuditEntry.prev_hash, AuditEntry.row_hash)
            .order_by(AuditEntry.id))]
        patients = list(s.scalars(select(Patient).order_by(Patient.id)))
        versions = list(s.scalars(select(CycleVersion).order_by(CycleVersion.id)))
    problems = verify_chain(audit)
    recorded: Dict[Tuple[str, str, Any], Tuple[int, Dict[str, Any]]] = {}
    for a in audit:
        new = _loads(a["new_json"])
        if new is None or "id" not in new:
            continue  # not a stored row, or written before migration 0003 (chain only)
        if a["action"] == "enroll":
            recorded.setdefault(("patient", a["entity_key"], None), (a["id"], new))
        elif a["action"] in ("add_cycle", "correct_cycle"):
            recorded.setdefault(("cycle", a["entity_key"], new.get("version")), (a["id"], new))
    legacy = any((_loads(a["new_json"]) or {}).get("id") is None and a["action"] == "enroll" for a in audit)
    by_pk = {p.id: p.patient_id for p in patients}
    for p in patients:
        _compare(problems, recorded.get(("patient", p.patient_id, None)), p,
                 f"patients row #{p.id} ({p.patient_id})", legacy)
    for v in versions:
        key = f"{by_pk.get(v.patient_pk, '#' + str(v.patient_pk))}/cycle {v.cycle}"
        _compare(problems, recorded.get(("cycle", key, v.version)), v,
                 f"cycle_versions row #{v.id} ({key} v{v.version})", legacy)
    return problems, {"audit_rows": len(audit), "head_hash": head(audit)}


def _compare(problems: List[str], entry, obj, name: str, legacy: bool) -> None:
    if entry is None:
        if not legacy:
            problems.append(f"{name}: no audit entry recorded it (written around the triggers)")
        return
    differ = _differences(obj, entry[1])
    if differ:
        problems.append(f"{name}: differs from what audit row #{entry[0]} recorded in {', '.join(differ)} "
                        f"(changed after it was written)")
