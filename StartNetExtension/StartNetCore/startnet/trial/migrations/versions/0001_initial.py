"""Initial trial schema: settings, patients, versioned cycles, append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trial_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("protocol_json", sa.Text(), nullable=False),
        sa.Column("created_at_utc", _TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trial_settings"),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("arm", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Date(), nullable=False),
        sa.Column("eligibility_json", sa.Text(), nullable=True),
        sa.Column("created_at_utc", _TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patients"),
        sa.UniqueConstraint("patient_id", name="uq_patients_patient_id"),
    )
    op.create_index("ix_patients_site", "patients", ["site"])
    op.create_table(
        "cycle_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=True),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("activity_gbq", sa.Float(), nullable=False),
        sa.Column("kidney_gy", sa.Float(), nullable=False),
        sa.Column("kidney_left_gy", sa.Float(), nullable=True),
        sa.Column("kidney_right_gy", sa.Float(), nullable=True),
        sa.Column("kidney_uncertainty_pct", sa.Float(), nullable=True),
        sa.Column("kidney_bed_gy", sa.Float(), nullable=True),
        sa.Column("labs_json", sa.Text(), nullable=True),
        sa.Column("capecitabine_mg_per_m2", sa.Float(), nullable=True),
        sa.Column("body_surface_area_m2", sa.Float(), nullable=True),
        sa.Column("capecitabine_days", sa.Integer(), nullable=True),
        sa.Column("capecitabine_schedule", sa.Text(), nullable=True),
        sa.Column("remarks", sa.Text(), nullable=True),
        sa.Column("dosimetry_source", sa.Text(), nullable=True),
        sa.Column("dosimetry_json", sa.Text(), nullable=True),
        sa.Column("deviations_json", sa.Text(), nullable=True),
        sa.Column("deviation_reason", sa.Text(), nullable=True),
        sa.Column("correction_reason", sa.Text(), nullable=True),
        sa.Column("recorded_at_utc", _TZ, nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cycle_versions"),
        sa.ForeignKeyConstraint(["patient_pk"], ["patients.id"],
                                name="fk_cycle_versions_patient_pk_patients"),
        sa.UniqueConstraint("patient_pk", "cycle", "version", name="uq_cycle_versions_version"),
        sa.UniqueConstraint("patient_pk", "cycle", "current", name="uq_cycle_versions_current"),
    )
    op.create_index("ix_cycle_versions_patient_pk", "cycle_versions", ["patient_pk"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at_utc", _TZ, nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("user_site", sa.String(64), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_key", sa.String(128), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("old_json", sa.Text(), nullable=True),
        sa.Column("new_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_patient_id", "audit_log", ["patient_id"])
    _append_only("audit_log")


def _append_only(table: str) -> None:
    """Refuse UPDATE and DELETE on ``table`` in the database itself."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
    else:
        raise RuntimeError(f"{table}: no append-only trigger for dialect {dialect}; only sqlite and postgresql "
                           "are supported (startnet.trial.db.normalise_url refuses others)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_index("ix_audit_log_patient_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_cycle_versions_patient_pk", table_name="cycle_versions")
    op.drop_table("cycle_versions")
    op.drop_index("ix_patients_site", table_name="patients")
    op.drop_table("patients")
    op.drop_table("trial_settings")
