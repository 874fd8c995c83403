"""The trial database API: enrol, record and correct cycles, status, history, export.

Every change runs in one transaction together with its audit-log entry, after locking the
patient (PostgreSQL row lock; SQLite ``BEGIN IMMEDIATE``), so concurrent writers from several
processes or sites are serialised per patient and nothing is lost; a duplicate cycle is refused
with "cycle N already recorded for patient X" (and the database's unique constraint backs this
up should any path miss it). Reads and writes are scoped to the user's site when one is set.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from startnet.errors import InputError, TrialRuleError
from startnet.trial import eligibility as elig
from startnet.trial.db import make_engine, require_current_schema, upgrade
from startnet.trial.identity import (
    User,
    canonical_site,
    current_user,
    reject_identity_numbers,
    validate_patient_id,
)
from startnet.trial.models import AuditEntry, CycleVersion, Patient, TrialSettings
from startnet.trial.protocol import Protocol, check_cycle, default_protocol
from startnet.trial.records import (
    CycleEntry,
    apply_entry,
    audit_dict,
    cycle_dict,
    dumps,
    entry_from_version,
    patient_dict,
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class TrialStore:
    """Open with :meth:`open` (existing database) or :meth:`initialise` (create / upgrade)."""

    def __init__(self, engine, user: Optional[User] = None):
        self.engine = engine
        self._user = user
        self._protocol: Optional[Protocol] = None

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, db: str, user: Optional[User] = None) -> TrialStore:
        store = cls(make_engine(db, must_exist=True), user)
        require_current_schema(store.engine)
        return store

    @classmethod
    def initialise(cls, db: str, user: Optional[User] = None,
                   protocol: Optional[Protocol] = None) -> TrialStore:
        """Create or upgrade the schema (Alembic ``upgrade head``) and store the protocol once."""
        store = cls(make_engine(db, must_exist=False), user)
        upgrade(store.engine)
        with store._write() as s:
            settings = s.get(TrialSettings, 1)
            if settings is None:
                chosen = protocol or default_protocol()
                chosen.validate()
                s.add(TrialSettings(id=1, protocol_json=dumps(chosen.to_dict()), created_at_utc=_now(),
                                    created_by=store.user.name))
                store._audit(s, "init", "trial_settings", "1", None, chosen.to_dict(), None)
            elif protocol is not None and protocol != Protocol.from_dict(json.loads(settings.protocol_json)):
                raise TrialRuleError("the database already holds different protocol parameters; "
                                     "they are not changed by init")
        return store

    def close(self) -> None:
        self.engine.dispose()

    # --- context ---------------------------------------------------------------------------
    @property
    def protocol(self) -> Protocol:
        if self._protocol is None:
            with self._read() as s:
                settings = s.get(TrialSettings, 1)
                if settings is None:
                    raise InputError("the trial database has no protocol parameters; run init")
                self._protocol = Protocol.from_dict(json.loads(settings.protocol_json))
        return self._protocol

    @property
    def user(self) -> User:
        if self._user is None:
            self._user = current_user()
        return self._user

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                yield s
        except OperationalError as exc:
            raise TrialRuleError(f"database busy or unavailable, nothing was changed "
                                 f"({str(exc.orig).strip().splitlines()[0]})") from None

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn, \
                    Session(bind=conn, expire_on_commit=False) as s, s.begin():
                yield s
        except OperationalError as exc:
            raise InputError(f"database unavailable ({str(exc.orig).strip().splitlines()[0]})") from None

    def _audit(self, s: Session, action: str, entity: str, key: str, old: Any, new: Any,
               patient_id: Optional[str]) -> None:
        s.add(AuditEntry(at_utc=_now(), user_name=self.user.name, user_site=self.user.site, action=action,
                         entity=entity, entity_key=key, patient_id=patient_id, old_json=dumps(old),
                         new_json=dumps(new)))

    def _patient(self, s: Session, patient_id: str, action: str, lock: bool) -> Patient:
        patient_id = validate_patient_id(patient_id)
        query = select(Patient).where(Patient.patient_id == patient_id)
        if lock:
            query = query.with_for_update()
        patient = s.scalars(query).one_or_none()
        if patient is None:
            raise InputError(f"unknown patient {patient_id!r}")
        self.user.check_site(patient.site, action, patient_id)
        return patient

    @staticmethod
    def _current(s: Session, patient: Patient) -> List[CycleVersion]:
        return list(s.scalars(select(CycleVersion).where(
            CycleVersion.patient_pk == patient.id, CycleVersion.current.is_(True)).order_by(CycleVersion.cycle)))

    # --- changes ---------------------------------------------------------------------------
    def enroll(self, patient_id: str, site: str, arm: int, enrolled: dt.date,
               eligibility_record: Optional[Dict[str, Any]] = None,
               eligibility_source: str = "eligibility record") -> Dict[str, Any]:
        """Enrol a patient; refused (naming the failing criteria) if the record fails any."""
        patient_id = validate_patient_id(patient_id)
        protocol = self.protocol
        site = canonical_site(site, protocol.sites)
        protocol.arm_rules(arm)
        self.user.check_site(site, "enrol", patient_id)
        result = None
        if eligibility_record is not None:
            reject_identity_numbers({"eligibility": eligibility_record}, eligibility_source)
            result = elig.evaluate(eligibility_record, arm, source=eligibility_source)
            if not result.eligible:
                raise TrialRuleError(f"patient {patient_id!r} is not eligible; failing criteria: "
                                     + "; ".join(result.failed))
        try:
            with self._write() as s:
                if s.scalars(select(Patient.id).where(Patient.patient_id == patient_id)).first() is not None:
                    raise TrialRuleError(f"patient {patient_id!r} is already enrolled")
                patient = Patient(patient_id=patient_id, site=site, arm=arm, enrolled=enrolled,
                                  eligibility_json=dumps(result.to_dict()) if result else None,
                                  created_at_utc=_now(), created_by=self.user.name)
                s.add(patient)
                s.flush()
                info = patient_dict(patient)
                self._audit(s, "enroll", "patient", patient_id, None, info, patient_id)
        except IntegrityError:
            raise TrialRuleError(f"patient {patient_id!r} is already enrolled") from None
        return info

    def add_cycle(self, patient_id: str, entry: CycleEntry,
                  deviation_reason: Optional[str] = None) -> Dict[str, Any]:
        """Record a new cycle. Protocol deviations are refused unless a reason is given."""
        deviation_reason = (deviation_reason or "").strip() or None
        reject_identity_numbers({"remarks": entry.remarks, "labs": entry.labs, "deviation_reason": deviation_reason,
                                 "capecitabine_schedule": entry.capecitabine_schedule},
                                f"cycle {entry.cycle} of patient {patient_id}")
        protocol = self.protocol
        try:
            with self._write() as s:
                patient = self._patient(s, patient_id, "record cycles of", lock=True)
                current = self._current(s, patient)
                if any(v.cycle == entry.cycle for v in current):
                    raise TrialRuleError(f"cycle {entry.cycle} already recorded for patient {patient.patient_id}"
                                         f" (use correct-cycle to change it)")
                deviations = check_cycle(protocol, patient.arm,
                                         [entry_from_version(v).to_dose() for v in current],
                                         entry.to_dose(), patient.enrolled)
                self._require_reason(patient.patient_id, entry.cycle, deviations, deviation_reason)
                version = CycleVersion(patient_pk=patient.id, version=1, current=True,
                                       deviations_json=dumps([d.__dict__ for d in deviations]) if deviations
                                       else None,
                                       deviation_reason=deviation_reason if deviations else None,
                                       recorded_at_utc=_now(), recorded_by=self.user.name)
                apply_entry(version, entry)
                s.add(version)
                record = cycle_dict(version)  # written with its audit entry in one flush at commit
                key = f"{patient.patient_id}/cycle {entry.cycle}"
                self._audit(s, "add_cycle", "cycle", key, None, record, patient.patient_id)
                if deviations:
                    self._audit(s, "deviation", "cycle", key, None,
                                {"deviations": record["deviations"], "reason": deviation_reason},
                                patient.patient_id)
        except IntegrityError:
            raise TrialRuleError(f"cycle {entry.cycle} already recorded for patient {patient_id}") from None
        return record

    @staticmethod
    def _require_reason(patient_id: str, cycle: int, deviations, reason: Optional[str]) -> None:
        if deviations and not reason:
            raise TrialRuleError(
                f"cycle {cycle} of patient {patient_id} is a protocol deviation: "
                + "; ".join(d.message for d in deviations)
                + " -- give a deviation reason (--deviation-reason) to record it as a deviation")

    def correct_cycle(self, patient_id: str, cycle: int, changes: Dict[str, Any], reason: str,
                      deviation_reason: Optional[str] = None) -> Dict[str, Any]:
        """Record a corrected version of a cycle; the old version stays in the history."""
        reason = (reason or "").strip()
        if not reason:
            raise InputError("a correction needs a reason (--reason)")
        if not changes:
            raise InputError(f"cycle {cycle}: no corrected values given")
        deviation_reason = (deviation_reason or "").strip() or None
        reject_identity_numbers({**changes, "reason": reason, "deviation_reason": deviation_reason},
                                f"correction of cycle {cycle} of patient {patient_id}")
        protocol = self.protocol
        try:
            with self._write() as s:
                patient = self._patient(s, patient_id, "correct cycles of", lock=True)
                current = self._current(s, patient)
                old = next((v for v in current if v.cycle == cycle), None)
                if old is None:
                    raise InputError(f"cycle {cycle} is not recorded for patient {patient.patient_id}")
                entry = entry_from_version(old).with_changes(changes)
                prior = [entry_from_version(v).to_dose() for v in current if v.cycle < cycle]
                later = [v for v in current if v.cycle > cycle]
                if later and entry.date >= later[0].date:
                    raise InputError(f"cycle {cycle}: corrected date {entry.date} is not before cycle "
                                     f"{later[0].cycle} ({later[0].date})")
                deviations = check_cycle(protocol, patient.arm, prior, entry.to_dose(), patient.enrolled)
                old_codes = {d["code"] for d in json.loads(old.deviations_json or "[]")}
                if deviations and not deviation_reason and {d.code for d in deviations} <= old_codes:
                    deviation_reason = old.deviation_reason  # same deviation, already justified
                self._require_reason(patient.patient_id, cycle, deviations, deviation_reason)
                old_record = cycle_dict(old)
                old.current = None
                s.flush()
                new = CycleVersion(patient_pk=patient.id, version=old.version + 1, current=True,
                                   deviations_json=dumps([d.__dict__ for d in deviations]) if deviations else None,
                                   deviation_reason=deviation_reason if deviations else None,
                                   correction_reason=reason, recorded_at_utc=_now(), recorded_by=self.user.name)
                apply_entry(new, entry)
                s.add(new)
                s.flush()
                record = cycle_dict(new)
                record["later_cycle_warnings"] = self._later_effects(
                    protocol, patient, prior + [entry.to_dose()], later)
                self._audit(s, "correct_cycle", "cycle", f"{patient.patient_id}/cycle {cycle}", old_record, record,
                            patient.patient_id)
        except IntegrityError:
            raise TrialRuleError(f"cycle {cycle} of patient {patient_id} was changed by someone else at the "
                                 f"same time; nothing was changed, try again") from None
        return record

    @staticmethod
    def _later_effects(protocol: Protocol, patient: Patient, before, later: List[CycleVersion]) -> List[str]:
        """Deviations that later cycles would now be, given a corrected earlier cycle (reported and
        audited; the later records themselves are not changed)."""
        warnings: List[str] = []
        running = list(before)
        for v in later:
            dose = entry_from_version(v).to_dose()
            recorded = {d["code"] for d in json.loads(v.deviations_json or "[]")}
            for d in check_cycle(protocol, patient.arm, running, dose, patient.enrolled):
                if d.code not in recorded:
                    warnings.append(f"cycle {v.cycle} would now be a protocol deviation ({d.code}): {d.message}")
            running.append(dose)
        return warnings

    # --- reads -----------------------------------------------------------------------------
    def patient(self, patient_id: str) -> Dict[str, Any]:
        with self._read() as s:
            return patient_dict(self._patient(s, patient_id, "view", lock=False))

    def cycles(self, patient_id: str, all_versions: bool = False) -> List[Dict[str, Any]]:
        with self._read() as s:
            patient = self._patient(s, patient_id, "view", lock=False)
            query = select(CycleVersion).where(CycleVersion.patient_pk == patient.id)
            if not all_versions:
                query = query.where(CycleVersion.current.is_(True))
            return [cycle_dict(v) for v in s.scalars(query.order_by(CycleVersion.cycle, CycleVersion.version))]

    def patients(self, site: Optional[str] = None) -> List[Dict[str, Any]]:
        """Patients visible to the user (their site only, if they have one), optionally one site."""
        query = select(Patient).order_by(Patient.site, Patient.patient_id)
        if site is not None:
            site = canonical_site(site, self.protocol.sites)
            self.user.check_site(site, "list", f"(site {site})")
            query = query.where(Patient.site == site)
        elif self.user.site is not None:
            query = query.where(Patient.site == self.user.site)
        with self._read() as s:
            return [patient_dict(p) for p in s.scalars(query)]

    def audit_trail(self, patient_id: Optional[str] = None) -> List[Dict[str, Any]]:
        with self._read() as s:
            query = select(AuditEntry).order_by(AuditEntry.id)
            if patient_id is not None:
                patient = self._patient(s, patient_id, "view", lock=False)
                query = query.where(AuditEntry.patient_id == patient.patient_id)
            elif self.user.site is not None:
                visible = select(Patient.patient_id).where(Patient.site == self.user.site)
                query = query.where(AuditEntry.patient_id.in_(visible))
            return [audit_dict(a) for a in s.scalars(query)]
