"""PostgreSQL: lock a patient and read its current cycles in one round trip.

``startnet_locked_cycles(patient_pk)`` takes the patient's transaction advisory lock (the lock
every writer of that patient takes: ``store.PATIENT_LOCK_CLASS``) and THEN reads the patient's
current cycle versions. It is a VOLATILE SQL function, so its second query runs on a snapshot
taken after the lock was granted (PostgreSQL: "VOLATILE functions obtain a fresh snapshot at the
start of each query they execute"): a cycle committed by the writer that held the lock is seen,
as when the lock and the read were two statements of the client. SECURITY INVOKER: the read is
under the caller's row-level security, and a patient the caller may not see has no row to call
it with. The client calls it LATERAL to the patient's row, so that recording or correcting a
cycle needs one statement before its INSERT instead of three.

SQLite: nothing (one writer at a time, ``BEGIN IMMEDIATE``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PATIENT_LOCK_CLASS = 0x53544E50  # = startnet.trial.store.PATIENT_LOCK_CLASS
GROUPS = "startnet_site, startnet_coordinator, startnet_monitor"
FUNCTION = "startnet_locked_cycles(integer)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar()
    op.execute(f"""
        CREATE FUNCTION startnet_locked_cycles(p_patient_pk integer) RETURNS SETOF cycle_versions
        LANGUAGE sql VOLATILE SECURITY INVOKER SET search_path = "{schema}", pg_temp AS $$
          SELECT pg_advisory_xact_lock({PATIENT_LOCK_CLASS}, p_patient_pk);
          SELECT * FROM cycle_versions WHERE patient_pk = p_patient_pk AND current IS TRUE ORDER BY cycle;
        $$""")
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION} TO {GROUPS}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}")
