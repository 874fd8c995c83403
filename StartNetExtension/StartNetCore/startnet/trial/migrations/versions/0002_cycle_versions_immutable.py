"""Cycle versions are immutable: no DELETE, and an UPDATE may only supersede (current TRUE -> NULL).

A correction inserts a new version and clears ``current`` on the old one; nothing else may ever
change a stored version, whoever connects to the database. Enforced by triggers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = ("id", "patient_pk", "cycle", "version", "date", "activity_gbq", "kidney_gy", "kidney_left_gy",
            "kidney_right_gy", "kidney_uncertainty_pct", "kidney_bed_gy", "labs_json", "capecitabine_mg_per_m2",
            "body_surface_area_m2", "capecitabine_days", "capecitabine_schedule", "remarks", "dosimetry_source",
            "dosimetry_json", "deviations_json", "deviation_reason", "correction_reason", "recorded_at_utc",
            "recorded_by")
_MESSAGE = "cycle_versions are immutable: only superseding a current version is allowed"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        unchanged = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _COLUMNS)
        op.execute("CREATE TRIGGER cycle_versions_no_delete BEFORE DELETE ON cycle_versions "
                   f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END")
        op.execute("CREATE TRIGGER cycle_versions_only_supersede BEFORE UPDATE ON cycle_versions "
                   f"WHEN NOT (OLD.current = 1 AND NEW.current IS NULL AND {unchanged}) "
                   f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END")
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION cycle_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF TG_OP = 'UPDATE' AND OLD.current AND NEW.current IS NULL "
            "AND (to_jsonb(NEW) - 'current') = (to_jsonb(OLD) - 'current') THEN RETURN NEW; END IF; "
            f"RAISE EXCEPTION '{_MESSAGE}'; END $$")
        op.execute("CREATE TRIGGER cycle_versions_immutable BEFORE UPDATE OR DELETE ON cycle_versions "
                   "FOR EACH ROW EXECUTE FUNCTION cycle_versions_immutable()")
    else:
        raise RuntimeError(f"cycle_versions: no immutability trigger for dialect {dialect}; only sqlite and "
                           "postgresql are supported (startnet.trial.db.normalise_url refuses others)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS cycle_versions_no_delete")
        op.execute("DROP TRIGGER IF EXISTS cycle_versions_only_supersede")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS cycle_versions_immutable ON cycle_versions")
        op.execute("DROP FUNCTION IF EXISTS cycle_versions_immutable()")
