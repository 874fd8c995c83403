"""The trial database API: enrol, record and correct cycles, status, history, export.

Every change runs in one transaction together with its audit-log entry, after locking the
patient (PostgreSQL row lock; SQLite ``BEGIN IMMEDIATE``), so concurrent writers from several
processes or sites are serialised per patient and nothing is lost; a duplicate cycle is refused
with "cycle N already recorded for patient X" (and the database's unique constraint backs this
up should any path miss it). Reads and writes are scoped to the user's site when one is set.

PostgreSQL: the acting user is the database login (:attr:`TrialStore.user` asks the server for
its role and site); the server's row-level security is what enforces the site scoping (the
client's checks only give clearer messages), and the audit rows are written by the database's
triggers (this client cannot write ``audit_log`` at all). The patient lock is a transaction
advisory lock on the patient (site users have no UPDATE privilege, which ``FOR UPDATE`` needs).
SQLite: the client writes the audit rows and their hash chain (``audit_chain.py``) itself.

Protocol rules: the client checks them (:func:`startnet.trial.protocol.check_cycle`) and explains a
refusal; PostgreSQL checks those it can from the row, the patient's history and the stored
protocol again in a trigger (migration 0005), so raw SQL cannot skip them. SQLite has no
server-side enforcement.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from startnet.errors import InputError, TrialRuleError
from startnet.trial import eligibility as elig
from startnet.trial.audit_chain import FIELDS, GENESIS, row_hash
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
    row_json,
)

PATIENT_LOCK_CLASS = 0x53544E50  # pg_advisory_xact_lock(class, patient id), taken by startnet_locked_cycles
# a patient (row-level security decides whether it is visible) LATERAL its locked current cycles
_LOCKED_CYCLES = text(
    "SELECT " + ", ".join([f"p.{c.name}" for c in Patient.__table__.c]
                          + [f"c.{c.name}" for c in CycleVersion.__table__.c])
    + " FROM patients p LEFT JOIN LATERAL startnet_locked_cycles(p.id) c ON TRUE WHERE p.patient_id = :pid"
    " ORDER BY c.cycle").columns(*Patient.__table__.c, *CycleVersion.__table__.c)
INSUFFICIENT_PRIVILEGE = "42501"  # also "new row violates row-level security policy"
CHECK_VIOLATION = "23514"  # migration 0005's trigger: "protocol rule NAME: ..."


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class TrialStore:
    """Open with :meth:`open` (existing database) or :meth:`initialise` (create / upgrade)."""

    def __init__(self, engine, user: Optional[User] = None):
        self.engine = engine
        self.is_postgresql = engine.dialect.name == "postgresql"
        if user is not None and self.is_postgresql:
            engine.dispose()
            raise InputError("a user name or site (--user/--user-site) is not accepted with PostgreSQL: the database "
                             "login is the acting user, with the role and site granted to it (startnet trial grant)")
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
            self._user = self._login() if self.is_postgresql else current_user()
        return self._user

    def _login(self) -> User:
        """The PostgreSQL login, its role and site as the server sees them."""
        with self._read() as s:
            login, role, site = s.execute(text("SELECT login, role, site FROM startnet_whoami()")).one()
        if role is None:
            raise InputError(f"database login {login!r} has no access to this trial database; the administrator "
                             f"grants it with `startnet trial --db OWNER_URL grant {login} --role site|coordinator|"
                             f"monitor [--site SITE]`")
        return User(name=login, site=site, role=role)

    def _require_writer(self) -> None:
        if self.user.role == "monitor":
            raise TrialRuleError(f"user {self.user.name!r} is a monitor (read-only): nothing was changed")

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                yield s
        except OperationalError as exc:
            raise TrialRuleError(f"database busy or unavailable, nothing was changed "
                                 f"({str(exc.orig).strip().splitlines()[0]})") from None
        except DBAPIError as exc:
            _raise_if_refused(exc, self.user.name)
            raise

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn, \
                    Session(bind=conn, expire_on_commit=False) as s, s.begin():
                yield s
        except OperationalError as exc:
            raise InputError(f"database unavailable ({str(exc.orig).strip().splitlines()[0]})") from None
        except DBAPIError as exc:
            _raise_if_refused(exc, self.user.name if self._user is not None else "this login")
            raise

    def _audit(self, s: Session, action: str, entity: str, key: str, old: Any, new: Any,
               patient_id: Optional[str]) -> None:
        """SQLite: append an audit row and its hash (the caller holds the write lock, BEGIN
        IMMEDIATE). PostgreSQL: nothing -- the database's triggers wrote it with the change."""
        if self.is_postgresql:
            return
        last = s.execute(select(AuditEntry.id, AuditEntry.row_hash).order_by(AuditEntry.id.desc()).limit(1)).first()
        entry = AuditEntry(id=(last[0] + 1) if last else 1, at_utc=_now(), user_name=self.user.name,
                           user_site=self.user.site, action=action, entity=entity, entity_key=key,
                           patient_id=patient_id, old_json=dumps(old), new_json=dumps(new))
        entry.prev_hash = (last[1] or "") if last else GENESIS
        entry.row_hash = row_hash(entry.prev_hash, {c: getattr(entry, c) for c in FIELDS})
        s.add(entry)
        s.flush()

    def _patient(self, s: Session, patient_id: str, action: str, lock: bool) -> Patient:
        patient_id = validate_patient_id(patient_id)
        query = select(Patient).where(Patient.patient_id == patient_id)
        if lock and not self.is_postgresql:
            query = query.with_for_update()
        return self._checked(s.scalars(query).one_or_none(), patient_id, action)

    def _checked(self, patient: Optional[Patient], patient_id: str, action: str) -> Patient:
        if patient is None:
            hidden = f" (user {self.user.name!r} sees only site {self.user.site})" if self.user.site else ""
            raise InputError(f"unknown patient {patient_id!r}{hidden}")
        self.user.check_site(patient.site, action, patient_id)
        return patient

    def _locked_patient(self, s: Session, patient_id: str, action: str) -> Tuple[Patient, List[CycleVersion]]:
        """The patient, locked against other writers, and its current cycle versions read after the lock.

        PostgreSQL: one statement, the patient's row LATERAL ``startnet_locked_cycles`` (migration
        0004: the advisory lock, then the read on a fresh snapshot). SQLite: the write lock is the
        transaction's (``BEGIN IMMEDIATE``)."""
        if not self.is_postgresql:
            patient = self._patient(s, patient_id, action, lock=True)
            return patient, self._current(s, patient)
        patient_id = validate_patient_id(patient_id)
        rows = s.execute(select(Patient, CycleVersion).from_statement(_LOCKED_CYCLES), {"pid": patient_id}).all()
        patient = self._checked(rows[0][0] if rows else None, patient_id, action)
        return patient, [version for _, version in rows if version is not None]

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
        self._require_writer()
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
                self._audit(s, "enroll", "patient", patient_id, None, row_json(patient), patient_id)
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
        self._require_writer()
        try:
            with self._write() as s:
                patient, current = self._locked_patient(s, patient_id, "record cycles of")
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
                s.flush()
                record = cycle_dict(version)
                key = f"{patient.patient_id}/cycle {entry.cycle}"
                self._audit(s, "add_cycle", "cycle", key, None, row_json(version), patient.patient_id)
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
        self._require_writer()
        try:
            with self._write() as s:
                patient, current = self._locked_patient(s, patient_id, "correct cycles of")
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
                old_record = row_json(old)
                warnings = self._later_effects(protocol, patient, prior + [entry.to_dose()], later)
                # the database's insert trigger supersedes the old version (current -> NULL) itself
                new = CycleVersion(patient_pk=patient.id, version=old.version + 1, current=True,
                                   deviations_json=dumps([d.__dict__ for d in deviations]) if deviations else None,
                                   deviation_reason=deviation_reason if deviations else None,
                                   correction_reason=reason, later_cycle_warnings_json=dumps(warnings or None),
                                   recorded_at_utc=_now(), recorded_by=self.user.name)
                apply_entry(new, entry)
                s.add(new)
                s.flush()
                s.expire(old, ["current"])
                record = cycle_dict(new)
                self._audit(s, "correct_cycle", "cycle", f"{patient.patient_id}/cycle {cycle}", old_record,
                            row_json(new), patient.patient_id)
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


def _raise_if_refused(exc: DBAPIError, who: str) -> None:
    """A privilege or row-level-security refusal by the server as one line (exit code 3)."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state == INSUFFICIENT_PRIVILEGE:
        reason = str(orig).strip().splitlines()[0] if str(orig).strip() else "permission denied"
        raise TrialRuleError(f"refused by the database for {who}: {reason}; nothing was changed") from None
    if state == CHECK_VIOLATION and str(orig).startswith("protocol rule "):
        # the server's protocol rules (migration 0005) caught what the client's checks let through
        # (another client version, a protocol changed under it): the server's message names the rule
        raise TrialRuleError(f"refused by the database: {str(orig).strip().splitlines()[0]}; nothing was changed") \
            from None
