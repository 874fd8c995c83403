"""SQLAlchemy ORM of the trial database (the schema itself is created by the Alembic migrations).

* ``trial_settings``: one row with the protocol parameters every site uses.
* ``patients``: pseudonym, site, arm, enrolment date, eligibility record (JSON).
* ``cycle_versions``: one row per *version* of a cycle record. A correction inserts a new version;
  the database's insert trigger (migration 0003) clears ``current`` on the old one
  (``current`` is TRUE or NULL, never FALSE, so the unique
  constraint on (patient, cycle, current) allows any number of superseded versions but exactly
  one current one: recording the same cycle twice is impossible even under a race). Database
  triggers (migration 0002) refuse any other UPDATE and every DELETE.
* ``audit_log``: append-only (UPDATE/DELETE are refused by database triggers): who, when (UTC),
  action, entity, old -> new JSON (the rows as stored), hash-chained (``audit_chain.py``). On
  PostgreSQL written only by triggers, naming the database login.
* ``trial_users``: PostgreSQL login -> role and site (migration 0003, ``users.py``).

Annotations are evaluated at runtime by SQLAlchemy, hence ``Optional``/``List`` (Python 3.9).
"""

from __future__ import annotations

import datetime as dt
from typing import List, Optional

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TrialSettings(Base):
    __tablename__ = "trial_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol_json: Mapped[str] = mapped_column(Text, nullable=False)
    created_at_utc: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    site: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    arm: Mapped[int] = mapped_column(Integer, nullable=False)
    enrolled: Mapped[dt.date] = mapped_column(Date, nullable=False)
    eligibility_json: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    created_at_utc: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)

    cycles: Mapped[List[CycleVersion]] = relationship(back_populates="patient", order_by="CycleVersion.id")


class CycleVersion(Base):
    __tablename__ = "cycle_versions"
    __table_args__ = (
        UniqueConstraint("patient_pk", "cycle", "version", name="uq_cycle_versions_version"),
        UniqueConstraint("patient_pk", "cycle", "current", name="uq_cycle_versions_current"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False, index=True)
    cycle: Mapped[int] = mapped_column(Integer, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    current: Mapped[Optional[bool]] = mapped_column(Boolean, nullable=True)
    date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    activity_gbq: Mapped[float] = mapped_column(Float, nullable=False)
    kidney_gy: Mapped[float] = mapped_column(Float, nullable=False)
    kidney_left_gy: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    kidney_right_gy: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    kidney_uncertainty_pct: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    kidney_bed_gy: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    labs_json: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    capecitabine_mg_per_m2: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    body_surface_area_m2: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    capecitabine_days: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    capecitabine_schedule: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    remarks: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    dosimetry_source: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    dosimetry_json: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    deviations_json: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    deviation_reason: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    correction_reason: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    later_cycle_warnings_json: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    recorded_at_utc: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recorded_by: Mapped[str] = mapped_column(String(128), nullable=False)

    patient: Mapped[Patient] = relationship(back_populates="cycles")


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at_utc: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    user_name: Mapped[str] = mapped_column(String(128), nullable=False)
    user_site: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    entity: Mapped[str] = mapped_column(String(32), nullable=False)
    entity_key: Mapped[str] = mapped_column(String(128), nullable=False)
    patient_id: Mapped[Optional[str]] = mapped_column(String(64), nullable=True, index=True)
    old_json: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    new_json: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)  # see audit_chain.py
    row_hash: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)


class TrialUser(Base):
    """PostgreSQL logins and what they may do (read by the row-level security policies through
    SECURITY DEFINER functions; written by ``startnet trial grant``/``revoke``). Unused on SQLite."""

    __tablename__ = "trial_users"
    __table_args__ = (
        CheckConstraint("role IN ('site', 'coordinator', 'monitor')", name="ck_trial_users_role"),
        CheckConstraint("(role = 'site') = (site IS NOT NULL)", name="ck_trial_users_site"),
    )

    login: Mapped[str] = mapped_column(String(63), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    site: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    granted_at_utc: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    granted_by: Mapped[str] = mapped_column(String(128), nullable=False)
