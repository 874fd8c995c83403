"""Trial database on SQLite and a real PostgreSQL server: schema, rules, audit, history, scoping."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from startnet.errors import InputError, TrialRuleError
from startnet.trial import summary
from startnet.trial.db import head_revision
from startnet.trial.identity import User
from startnet.trial.models import Base, CycleVersion
from startnet.trial.protocol import default_protocol
from startnet.trial.records import CSV_COLUMNS, CycleEntry
from startnet.trial.results import check_matches, load_results, parse_results
from startnet.trial.store import TrialStore

D0 = dt.date(2025, 1, 13)


def _date(i: int) -> dt.date:
    return D0 + dt.timedelta(weeks=10 * i)


def is_postgresql(url: str) -> bool:
    return url.startswith("postgresql")


def as_user(url: str, name: str, site=None):
    """A client-named user on SQLite; on PostgreSQL the database login acts (a name is refused)."""
    return None if is_postgresql(url) else User(name, site)


@pytest.fixture
def store(trial_db_url):
    s = TrialStore.initialise(trial_db_url, as_user(trial_db_url, "physicist"))
    yield s
    s.close()


def test_migrated_schema_equals_orm_metadata(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert tables == {"alembic_version", "trial_settings", "patients", "cycle_versions", "audit_log", "trial_users"}


def test_migrations_downgrade_to_base_and_upgrade_again(trial_db_url):
    from alembic import command

    from startnet.trial.db import alembic_config, make_engine, upgrade

    engine = make_engine(trial_db_url, must_exist=False)
    upgrade(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    with engine.connect() as conn:  # triggers and functions are gone too
        if conn.dialect.name == "postgresql":
            names = ("audit_log_append_only", "cycle_versions_immutable", "startnet_locked_cycles",
                     "startnet_cycle_protocol_rules", "startnet_deviation_declared")
            assert conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname IN :n").bindparams(
                sa.bindparam("n", expanding=True)), {"n": list(names)}).scalar() == 0
    upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_init_is_idempotent_and_keeps_protocol(trial_db_url):
    TrialStore.initialise(trial_db_url).close()
    again = TrialStore.initialise(trial_db_url, protocol=default_protocol())
    assert again.protocol == default_protocol()
    # the same database by its other spellings: plain postgresql:// (psycopg 3 chosen), sqlite:/// URL
    other_spelling = (trial_db_url.replace("postgresql+psycopg://", "postgresql://") if "://" in trial_db_url
                      else f"sqlite:///{trial_db_url}")
    assert TrialStore.open(other_spelling).protocol == default_protocol()
    other = default_protocol().to_dict()
    other["kidney_limit_gy"] = 23.0
    from startnet.trial.protocol import Protocol
    with pytest.raises(TrialRuleError, match="different protocol"):
        TrialStore.initialise(trial_db_url, protocol=Protocol.from_dict(other))
    again.close()


def test_protocol_stored_before_the_planning_parameters_still_loads(trial_db_url):
    """Databases written before issue 10 hold protocol JSON without the planning_* uncertainty keys."""
    TrialStore.initialise(trial_db_url).close()
    new_keys = ("planning_confidence", "planning_cv_prior", "planning_calibration_rel_sd", "planning_unrecorded_rel_sd")
    old_json = json.dumps({k: v for k, v in default_protocol().to_dict().items() if k not in new_keys})
    engine = sa.create_engine(trial_db_url if "://" in trial_db_url else f"sqlite:///{trial_db_url}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE trial_settings SET protocol_json = :j WHERE id = 1"), {"j": old_json})
    engine.dispose()
    store = TrialStore.open(trial_db_url, as_user(trial_db_url, "physicist"))
    try:
        assert store.protocol == default_protocol() and store.protocol.planning_confidence is None
        store.enroll("SN-002", "Uppsala", 2, dt.date(2025, 1, 2))
        store.add_cycle("SN-002", CycleEntry(1, _date(0), 7.5, 4.5, kidney_uncertainty_pct=10.0))
        nxt = summary.status(store, "SN-002")["next_cycle"]
        assert nxt["max_activity_gbq"] == 7.5 and 0.0 <= nxt["probability_limit_exceeded"] < 1e-3
        assert nxt["max_activity_gbq_95"] == 7.5 and nxt["last_cycle_expected"] is False
    finally:
        store.close()


def test_hand_case_through_the_database(store):
    store.enroll("SN-001", "Sahlgrenska", 2, dt.date(2025, 1, 2))
    for i in range(8):
        store.add_cycle("SN-001", CycleEntry(i + 1, _date(i), 7.5, 3.125))
    store.add_cycle("SN-001", CycleEntry(9, _date(8), 7.5, 3.0, kidney_uncertainty_pct=10.0))
    st = summary.status(store, "SN-001")
    assert st["cumulative_kidney_gy"] == pytest.approx(28.0, abs=1e-9)
    assert st["remaining_kidney_gy"] == pytest.approx(2.0, abs=1e-9)
    assert st["limit_gy"] == 30.0
    nxt = st["next_cycle"]
    assert nxt["allowed"] is True and nxt["max_activity_gbq"] == pytest.approx(5.0, abs=1e-12)
    assert nxt["earliest_date"] == (_date(8) + dt.timedelta(weeks=8)).isoformat()
    assert nxt["latest_date"] == (_date(8) + dt.timedelta(weeks=12)).isoformat()
    assert [c["cycle"] for c in st["cycles"]] == list(range(1, 10))
    assert st["cycles"][-1]["cumulative_kidney_gy"] == pytest.approx(28.0)
    assert summary.check_consistency(store) == []


def test_enrolment_refusals(store):
    record = {"gfr_ml_min_1_73m2": 45, "hb_g_l": 85, "platelets_1e9_l": 150}
    with pytest.raises(TrialRuleError, match=r"not eligible; failing criteria: GFR > 50 .*Hb > 90"):
        store.enroll("SN-002", "Skåne", 1, dt.date(2025, 1, 2), record)
    assert store.patients() == []  # nothing stored
    assert [a["action"] for a in store.audit_trail()] == ["init"]
    info = store.enroll("SN-002", "skane", 1, dt.date(2025, 1, 2), {"gfr": 80, "hb_g_l": 120})
    assert info["site"] == "Skåne" and info["eligibility"]["eligible"] is True
    assert "platelets_1e9_l" in info["eligibility"]["not_documented"]
    with pytest.raises(TrialRuleError, match="already enrolled"):
        store.enroll("SN-002", "Skåne", 1, dt.date(2025, 1, 2))
    with pytest.raises(InputError, match="not a trial site"):
        store.enroll("SN-003", "Malmö", 1, dt.date(2025, 1, 2))
    with pytest.raises(InputError, match="personal identity number"):
        store.enroll("19850709-9805", "Skåne", 1, dt.date(2025, 1, 2))
    with pytest.raises(InputError, match="arm 4"):
        store.enroll("SN-003", "Skåne", 4, dt.date(2025, 1, 2))
    with pytest.raises(InputError, match="remarks contains what looks like a Swedish personal identity"):
        store.add_cycle("SN-002", CycleEntry(1, _date(0), 7.5, 3.0, remarks="pat 19850709-9805 tolerated well"))
    with pytest.raises(InputError, match="labs.note contains"):
        store.add_cycle("SN-002", CycleEntry(1, _date(0), 7.5, 3.0, labs={"hb_g_l": 120, "note": "850709-9805"}))
    with pytest.raises(InputError, match="reason contains"):
        store.correct_cycle("SN-002", 1, {"kidney_gy": 2.0}, reason="asked by 850709-9805")
    with pytest.raises(InputError, match="eligibility.remarks contains"):
        store.enroll("SN-005", "Skåne", 1, dt.date(2025, 1, 2), {"remarks": "ID 198507099805"})
    with pytest.raises(InputError, match="unknown patient 'SN-404'"):
        store.add_cycle("SN-404", CycleEntry(1, _date(0), 7.5, 3.0))


def test_duplicate_cycle_is_refused_and_constraint_backs_it_up(store):
    store.enroll("SN-001", "Uppsala", 2, dt.date(2025, 1, 2))
    store.add_cycle("SN-001", CycleEntry(1, _date(0), 7.4, 2.9))
    with pytest.raises(TrialRuleError, match="cycle 1 already recorded for patient SN-001"):
        store.add_cycle("SN-001", CycleEntry(1, _date(0), 7.4, 2.9))
    # the database itself refuses a second current version (guards against any racing path)
    with Session(store.engine) as s, pytest.raises(IntegrityError), s.begin():
        first = s.query(CycleVersion).one()
        s.add(CycleVersion(patient_pk=first.patient_pk, cycle=1, version=2, current=True, date=first.date,
                           activity_gbq=7.4, kidney_gy=2.9, recorded_at_utc=first.recorded_at_utc,
                           recorded_by="intruder"))
    assert len(store.cycles("SN-001", all_versions=True)) == 1


def test_deviation_needs_a_reason_and_is_recorded(store):
    store.enroll("SN-001", "Karolinska", 2, dt.date(2025, 1, 2))
    for i in range(8):
        store.add_cycle("SN-001", CycleEntry(i + 1, _date(i), 7.5, 3.125))
    store.add_cycle("SN-001", CycleEntry(9, _date(8), 7.5, 3.0))
    too_much = CycleEntry(10, _date(9), 6.0, 2.4)  # max is 5.0 GBq
    with pytest.raises(TrialRuleError, match="protocol deviation: activity 6 GBq is above the allowed maximum 5.000"):
        store.add_cycle("SN-001", too_much)
    assert len(store.cycles("SN-001")) == 9
    record = store.add_cycle("SN-001", too_much, deviation_reason="physician decision, tumour progression")
    assert [d["code"] for d in record["deviations"]] == ["activity_above_maximum"]
    assert record["deviation_reason"] == "physician decision, tumour progression"
    st = summary.status(store, "SN-001")
    assert st["cumulative_kidney_gy"] == pytest.approx(30.4)
    assert st["next_cycle"]["allowed"] is False and "reached the 30 Gy limit" in st["next_cycle"]["reason"]
    assert st["deviations"][0]["cycle"] == 10
    devs = [a for a in store.audit_trail("SN-001") if a["action"] == "deviation"]
    assert len(devs) == 1 and devs[0]["new"]["reason"] == "physician decision, tumour progression"
    with pytest.raises(TrialRuleError, match="dose_limit_reached|not allowed: cumulative kidney dose 30.40"):
        store.add_cycle("SN-001", CycleEntry(11, _date(10), 1.0, 0.4))


def test_corrections_keep_history_and_audit_old_to_new(store):
    store.enroll("SN-001", "Sahlgrenska", 1, dt.date(2025, 1, 2))
    store.add_cycle("SN-001", CycleEntry(1, _date(0), 7.5, 3.0, capecitabine_mg_per_m2=825.0,
                                         body_surface_area_m2=1.9, capecitabine_days=14,
                                         capecitabine_schedule="twice daily, days 1-14"))
    store.add_cycle("SN-001", CycleEntry(2, _date(1), 7.5, 3.3))
    corrected = store.correct_cycle("SN-001", 1, {"kidney_gy": 2.7}, reason="re-segmented left kidney")
    assert corrected["version"] == 2 and corrected["correction_reason"] == "re-segmented left kidney"
    corrected = store.correct_cycle("SN-001", 1, {"activity_gbq": 7.3}, reason="syringe residual measured")
    assert corrected["version"] == 3 and corrected["kidney_gy"] == 2.7 and corrected["activity_gbq"] == 7.3
    versions = [v for v in store.cycles("SN-001", all_versions=True) if v["cycle"] == 1]
    assert [(v["version"], v["current"], v["kidney_gy"]) for v in versions] == [
        (1, False, 3.0), (2, False, 2.7), (3, True, 2.7)]
    assert versions[2]["capecitabine"] == {"dose_mg_per_m2": 825.0, "body_surface_area_m2": 1.9,
                                           "days_given": 14, "schedule": "twice daily, days 1-14"}
    st = summary.status(store, "SN-001")
    assert st["cumulative_kidney_gy"] == pytest.approx(2.7 + 3.3)
    audit = [a for a in store.audit_trail("SN-001") if a["action"] == "correct_cycle"]
    assert [(a["old"]["kidney_gy"], a["new"]["kidney_gy"]) for a in audit] == [(3.0, 2.7), (2.7, 2.7)]
    assert [(a["old"]["activity_gbq"], a["new"]["activity_gbq"]) for a in audit] == [(7.5, 7.5), (7.5, 7.3)]
    # the client's name on SQLite; on PostgreSQL the database login (the test server's superuser)
    login = "postgres" if is_postgresql(store.engine.url.drivername) else "physicist"
    assert all(a["user"] == login and a["at_utc"].endswith("Z") for a in audit)
    with pytest.raises(InputError, match="not before cycle 2"):
        store.correct_cycle("SN-001", 1, {"date": _date(1)}, reason="wrong date")
    with pytest.raises(InputError, match="needs a reason"):
        store.correct_cycle("SN-001", 1, {"kidney_gy": 2.0}, reason=" ")
    with pytest.raises(InputError, match="cannot correct cycle"):
        store.correct_cycle("SN-001", 1, {"cycle": 3}, reason="renumber")
    # a correction that turns a later cycle into a deviation is reported (and audited), not hidden:
    # cycle 1 at 20 Gy / 7.3 GBq = 2.74 Gy/GBq leaves 10 Gy -> 3.65 GBq, but cycle 2 had 7.5 GBq
    corrected = store.correct_cycle("SN-001", 1, {"kidney_gy": 20.0}, reason="wrong unit entered")
    assert len(corrected["later_cycle_warnings"]) == 1
    assert corrected["later_cycle_warnings"][0].startswith(
        "cycle 2 would now be a protocol deviation (activity_above_maximum)")
    store.correct_cycle("SN-001", 1, {"kidney_gy": 2.7}, reason="unit fixed")
    hist = summary.history(store, "SN-001")
    # the audit trail holds the rows as stored: the warnings are part of the corrected version
    assert json.loads(hist["audit"][-2]["new"]["later_cycle_warnings_json"]) == corrected["later_cycle_warnings"]
    assert len(hist["versions"]) == 6
    assert [a["action"] for a in hist["audit"]] == ["enroll", "add_cycle", "add_cycle"] + ["correct_cycle"] * 4
    assert summary.check_consistency(store) == []


def test_audit_log_is_append_only_in_the_database(store):
    store.enroll("SN-001", "Skåne", 3, dt.date(2025, 1, 2))
    for statement in ("UPDATE audit_log SET user_name = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(statement))
    assert [a["action"] for a in store.audit_trail()] == ["init", "enroll"]


def test_cycle_versions_cannot_be_rewritten_in_the_database(store):
    store.enroll("SN-001", "Skåne", 2, dt.date(2025, 1, 2))
    store.add_cycle("SN-001", CycleEntry(1, _date(0), 7.5, 3.0))
    store.correct_cycle("SN-001", 1, {"kidney_gy": 2.5}, reason="re-segmented")  # supersede: allowed
    for statement in ("UPDATE cycle_versions SET kidney_gy = 1.0",
                      "UPDATE cycle_versions SET kidney_gy = 1.0 WHERE current IS NULL",
                      "UPDATE cycle_versions SET current = NULL, remarks = 'x' WHERE current",
                      "UPDATE cycle_versions SET current = TRUE WHERE current IS NULL",
                      "DELETE FROM cycle_versions"):
        with pytest.raises(DBAPIError, match="immutable"), store.engine.begin() as conn:
            conn.execute(text(statement))
    assert [(v["version"], v["kidney_gy"]) for v in store.cycles("SN-001", all_versions=True)] == [
        (1, 3.0), (2, 2.5)]


def test_site_scoping_by_the_client_on_sqlite(tmp_path):
    """SQLite has no access control: the client scopes a named user to a site (PostgreSQL: the
    server does, see test_trial_security.py)."""
    trial_db_url = str(tmp_path / "trial.db")
    admin = TrialStore.initialise(trial_db_url, User("coordinator"))
    admin.enroll("SN-S1", "Skåne", 2, dt.date(2025, 1, 2))
    admin.enroll("SN-U1", "Uppsala", 2, dt.date(2025, 1, 2))
    uppsala = TrialStore.open(trial_db_url, User("ulla", "Uppsala"))
    uppsala.add_cycle("SN-U1", CycleEntry(1, _date(0), 7.5, 3.0))
    with pytest.raises(TrialRuleError, match="user 'ulla' \\(site Uppsala\\) may not record cycles of patient 'SN-S1'"):
        uppsala.add_cycle("SN-S1", CycleEntry(1, _date(0), 7.5, 3.0))
    with pytest.raises(TrialRuleError, match="may not enrol"):
        uppsala.enroll("SN-S2", "Skåne", 2, dt.date(2025, 1, 2))
    with pytest.raises(TrialRuleError, match="may not view"):
        summary.status(uppsala, "SN-S1")
    with pytest.raises(TrialRuleError, match="may not list"):
        uppsala.patients("Skåne")
    assert [p["patient"] for p in uppsala.patients()] == ["SN-U1"]
    assert {r["patient_id"] for r in summary.export_rows(uppsala)} == {"SN-U1"}
    assert all(a["patient"] == "SN-U1" for a in uppsala.audit_trail())
    assert [p["patient"] for p in admin.patients()] == ["SN-S1", "SN-U1"]
    assert admin.cycles("SN-S1") == []
    audit = [a for a in admin.audit_trail("SN-U1") if a["action"] == "add_cycle"]
    assert audit[0]["user"] == "ulla" and audit[0]["user_site"] == "Uppsala"
    admin.close()
    uppsala.close()


def test_csv_export_columns_and_values(store):
    store.enroll("SN-001", "Sahlgrenska", 2, dt.date(2025, 1, 2))
    store.enroll("SN-002", "Skåne", 3, dt.date(2025, 1, 2))
    store.add_cycle("SN-001", CycleEntry(1, _date(0), 7.5, 3.0, kidney_left_gy=2.8, kidney_right_gy=3.2))
    store.add_cycle("SN-001", CycleEntry(2, _date(1), 7.5, 3.3))
    store.add_cycle("SN-002", CycleEntry(1, _date(0), 7.4, 2.2))
    store.correct_cycle("SN-001", 2, {"kidney_gy": 3.6}, reason="recalculated")
    rows = list(csv.DictReader(io.StringIO(summary.export_csv_text(store))))
    assert list(rows[0].keys()) == CSV_COLUMNS
    assert [(r["patient_id"], r["cycle"], r["version"], r["kidney_gy"], r["cumulative_kidney_gy"]) for r in rows] == [
        ("SN-001", "1", "1", "3.0", "3.0"), ("SN-001", "2", "2", "3.6", "6.6"), ("SN-002", "1", "1", "2.2", "2.2")]
    assert rows[0]["kidney_left_gy"] == "2.8" and rows[0]["site"] == "Sahlgrenska" and rows[2]["arm"] == "3"
    assert rows[1]["correction_reason"] == "recalculated"
    every = list(csv.DictReader(io.StringIO(summary.export_csv_text(store, all_versions=True))))
    assert len(every) == 4 and [r["current"] for r in every[:3]] == ["True", "False", "True"]


def test_cycle_from_results_json(store, tmp_path):
    results = {
        "schema_version": 1, "software": {"name": "startnet", "version": "0.1.0"}, "patient_id": "SN-001",
        "cycle": 1, "method": "vsv-density", "injected_activity_mbq": 7420.0,
        "structures": {"kidney_left": {"mean_gy": 3.1, "mass_g": 150.0, "uncertainty_pct": 9.0},
                       "kidney_right": {"mean_gy": 2.7, "mass_g": 170.0}},
        "kidneys_mean_gy": 2.8875, "kidneys_bed_gy": 3.2, "kidneys_uncertainty_pct": 8.5,
        "provenance": {"run_id": "abc"}, "warnings": [],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    r = load_results(str(path))
    assert (r.kidney_gy, r.kidney_left_gy, r.kidney_right_gy, r.uncertainty_pct, r.bed_gy) == (
        2.8875, 3.1, 2.7, 8.5, 3.2)
    with pytest.raises(InputError, match="cycle 1 is not 2"):
        check_matches(r, "SN-001", 2, 7.42)
    assert check_matches(r, "SN-009", 1, 6.0) == [
        "dosimetry result patient_id 'SN-001' is not the trial patient 'SN-009'",
        "dosimetry result injected_activity_mbq 7420 MBq differs from the administered 6 GBq by more than 5%"]
    r = load_results(str(path))
    assert check_matches(r, "SN-001", 1, 7.42) == [] and "record_warnings" not in r.provenance
    store.enroll("SN-001", "Uppsala", 2, dt.date(2025, 1, 2))
    rec = store.add_cycle("SN-001", r.to_entry(1, _date(0), 7.42, remarks="from results.json"))
    assert (rec["kidney_gy"], rec["kidney_left_gy"], rec["kidney_right_gy"]) == (2.8875, 3.1, 2.7)
    assert rec["dosimetry_source"] == str(path.resolve()) and rec["remarks"] == "from results.json"
    assert rec["dosimetry"]["provenance"] == {"run_id": "abc"} and len(rec["dosimetry"]["sha256"]) == 64
    st = summary.status(store, "SN-001")
    assert st["cumulative_kidney_uncertainty_gy"] == pytest.approx(2.8875 * 0.085)
    assert st["cumulative_kidney_bed_gy"] == pytest.approx(3.2)
    # without kidneys_mean_gy: mass-weighted mean of both sides (150*3.1 + 170*2.7) / 320
    del results["kidneys_mean_gy"]
    path.write_text(json.dumps(results))
    assert load_results(str(path)).kidney_gy == pytest.approx((150 * 3.1 + 170 * 2.7) / 320)
    path.write_text(json.dumps({"structures": {}}))
    with pytest.raises(InputError, match="no kidney dose"):
        load_results(str(path))
    in_memory = parse_results({"kidneys_mean_gy": 4.0, "patient_id": "SN-001"}, "Dosimetry module")
    assert in_memory.kidney_gy == 4.0 and in_memory.source == "Dosimetry module"
    with pytest.raises(InputError, match="dosimetry result Dosimetry module: kidneys_mean_gy must be"):
        parse_results({"kidneys_mean_gy": -1.0}, "Dosimetry module")
