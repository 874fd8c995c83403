"""The audit trail's hash chain: one canonical serialisation, shared by the database and the client.

Every audit row carries ``prev_hash`` (the previous row's ``row_hash``; 64 zeros for the first
row) and ``row_hash = sha256(prev_hash "|" content)`` in lower-case hex, where ``content`` is the
row's fields in :data:`FIELDS` order joined by ``|``, each written as ``<UTF-8 byte length>:<text>``
(``~`` for NULL), ``id`` in decimal and ``at_utc`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

On PostgreSQL the rows are written by SECURITY DEFINER triggers (``startnet_append_audit`` in
migration 0003 computes the same bytes with the built-in ``sha256(bytea)``); on SQLite the client
writes them inside its ``BEGIN IMMEDIATE`` transaction. :func:`verify_chain` recomputes the chain
client-side and names the first row that was altered, or before which rows were removed or
inserted, whoever did it (also an owner or superuser with triggers disabled). An owner who
rewrites the whole chain from some row on is detected only by comparison with a copy of an
earlier head hash (``startnet trial check`` prints it) -- tamper evidence, not prevention.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Dict, Iterable, List, Optional

GENESIS = "0" * 64
FIELDS = ("id", "at_utc", "user_name", "user_site", "action", "entity", "entity_key", "patient_id",
          "old_json", "new_json")


def utc_text(value: Optional[dt.datetime]) -> Optional[str]:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (naive values are UTC, as SQLite returns them)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _field(value: Optional[str]) -> str:
    return "~" if value is None else f"{len(value.encode('utf-8'))}:{value}"


def canonical(row: Dict[str, Any]) -> str:
    """The hashed text of one audit row (a dict with the :data:`FIELDS` keys)."""
    parts = []
    for name in FIELDS:
        value = row.get(name)
        if name == "id":
            value = None if value is None else str(int(value))
        elif name == "at_utc":
            value = utc_text(value)
        parts.append(_field(value))
    return "|".join(parts)


def row_hash(prev_hash: str, row: Dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + "|" + canonical(row)).encode("utf-8")).hexdigest()


def verify_chain(rows: Iterable[Dict[str, Any]]) -> List[str]:
    """Problems of the chain (rows in ``id`` order, each with ``prev_hash`` and ``row_hash``).

    An altered row is named by its id; a removed or inserted row shows as the first row whose
    ``prev_hash`` is not the stored hash of the row before it. After a problem the check goes on
    from the stored hash, so that one change is reported once and later ones are still found.
    """
    problems: List[str] = []
    expected_prev, before = GENESIS, None
    for row in rows:
        rid = row["id"]
        if row.get("prev_hash") != expected_prev:
            where = f"after audit row #{before}" if before is not None else "at the start of the trail"
            problems.append(f"audit row #{rid}: chain broken {where} (its previous-row hash does not match: a row "
                            f"was removed or inserted there, or the previous row's hash was rewritten)")
        if row.get("row_hash") != row_hash(row.get("prev_hash") or "", row):
            problems.append(f"audit row #{rid} ({row.get('action')} {row.get('entity_key')}): content altered "
                            f"(its hash does not match its content)")
        expected_prev, before = row.get("row_hash"), rid
    return problems


def head(rows: List[Dict[str, Any]]) -> Optional[str]:
    return rows[-1].get("row_hash") if rows else None
