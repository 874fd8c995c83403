"""``startnet trial --db SOURCE migrate-to URL``: move a trial to an empty PostgreSQL database.

Every row is copied as it is -- protocol, patients, every cycle version (superseded ones too) and
every audit row with its hashes -- so the hash chain continues unbroken on the new server. The
copy runs as the destination's owner in one transaction with the destination's own triggers
disabled for that transaction only (they would stamp the owner as the creator and write new
audit rows); afterwards one ``migrate`` audit row is appended through the normal chain, naming the
source (password masked), the row counts and the source's chain head. Both sides are then checked
(:func:`startnet.trial.summary.check_consistency`); any problem is reported and the command fails.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict, List

from sqlalchemy import DateTime, func, insert, select, text

from startnet.errors import InputError, TrialRuleError
from startnet.trial.models import AuditEntry, CycleVersion, Patient, TrialSettings
from startnet.trial.urls import backend, redact_url

TABLES = (TrialSettings, Patient, CycleVersion, AuditEntry)


def _rows(store, model) -> List[Dict[str, Any]]:
    columns = list(model.__table__.columns)
    with store._read() as s:
        rows = s.execute(select(*columns).order_by(model.__table__.c.id)).all()
    out = []
    for row in rows:
        values = {}
        for column, value in zip(columns, row):
            if isinstance(column.type, DateTime) and isinstance(value, dt.datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)  # SQLite keeps UTC without its zone
            values[column.name] = value
        out.append(values)
    return out


def migrate_to(source, url: str) -> Dict[str, Any]:
    from startnet.trial.store import TrialStore
    from startnet.trial.summary import check_consistency

    if backend(url) != "postgresql":
        raise InputError(f"migrate-to {redact_url(url)!r}: the destination must be a PostgreSQL database URL "
                         f"(postgresql://OWNER@HOST/DB)")
    problems = check_consistency(source)
    if problems:
        raise TrialRuleError(f"the source database is not consistent ({problems[0]}); nothing was copied")
    data = {model.__tablename__: _rows(source, model) for model in TABLES}
    head = data["audit_log"][-1]["row_hash"] if data["audit_log"] else None

    dest = TrialStore(_dest_engine(url))
    try:
        from startnet.trial.db import shown_url, upgrade

        upgrade(dest.engine)
        if dest.user.role != "owner":
            raise TrialRuleError(f"migrate-to runs as the owner of the destination database, not as "
                                 f"{dest.user.role} user {dest.user.name!r}")
        with dest.engine.begin() as conn:
            held = {m.__tablename__: conn.execute(select(func.count()).select_from(m.__table__)).scalar()
                    for m in TABLES}
            if any(held.values()):
                raise TrialRuleError(f"destination {redact_url(url)!r} already holds a trial ("
                                     + ", ".join(f"{n} {t}" for t, n in held.items() if n)
                                     + "); migrate-to copies into an empty database only")
            for model in TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {model.__tablename__} DISABLE TRIGGER USER")
            for model in TABLES:
                rows = data[model.__tablename__]
                if rows:
                    conn.execute(insert(model.__table__), rows)
                conn.exec_driver_sql(f"ALTER TABLE {model.__tablename__} ENABLE TRIGGER USER")
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{model.__tablename__}', 'id'), "
                                  f"(SELECT max(id) FROM {model.__tablename__}))"))
            summary = {"from": shown_url(source.engine),
                       "patients": len(data["patients"]), "cycle_versions": len(data["cycle_versions"]),
                       "audit_rows": len(data["audit_log"]), "source_head_hash": head}
            conn.execute(text("SELECT startnet_append_audit('migrate', 'trial', 'migrate-to', NULL, NULL, :new)"),
                         {"new": json.dumps(summary, sort_keys=True)})
        problems = [f"destination: {p}" for p in check_consistency(dest)]
        problems += [f"source: {p}" for p in check_consistency(source)]
        if problems:
            raise TrialRuleError("migrate-to: the copy does not check out: " + "; ".join(problems))
        return {**summary, "to": redact_url(url)}
    finally:
        dest.close()


def _dest_engine(url: str):
    from startnet.trial.db import make_engine

    return make_engine(url, must_exist=False)
