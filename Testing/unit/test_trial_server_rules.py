"""Protocol rules enforced by the PostgreSQL server (migration 0005), not only by the client.

A site user (Uppsala) of a secured trial on the session's real PostgreSQL server inserts cycle
versions with raw SQL: each rule broken is refused with an error naming the rule, a valid cycle is
accepted, a deviation recorded with its code and reason is accepted; the limits come from the
protocol stored at ``init`` (a trial initialised with other limits enforces those). The client's
own checks and messages are unchanged, a refusal the client did not foresee reaches the user as
one line naming the rule, and ``check`` finds the audit chain intact. A database created at
revision 0004 (with patients and cycles) upgrades to the rules and keeps working, on both backends.
"""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest
from test_trial_security import Trial, ok, refused

from startnet.errors import TrialRuleError
from startnet.trial.protocol import Protocol, default_protocol

INSERT = ("INSERT INTO cycle_versions (patient_pk, cycle, version, date, activity_gbq, kidney_gy, kidney_left_gy, "
          "kidney_right_gy, deviations_json, deviation_reason, recorded_at_utc, recorded_by) VALUES ("
          "(SELECT id FROM patients WHERE patient_id = %(pid)s), %(cycle)s, 1, %(date)s, %(gbq)s, %(gy)s, %(left)s, "
          "%(right)s, %(dev)s, %(reason)s, now(), 'anyone')")


@pytest.fixture
def trial(postgres_server, tmp_path, capsys, monkeypatch):
    return Trial(postgres_server, tmp_path, capsys, monkeypatch)


def raw_cycle(trial, key, pid, cycle, date, gbq, gy, left=None, right=None, dev=None, reason=None):
    """A cycle inserted with raw SQL as login ``key``: the row count, or the error."""
    return trial.sql(key, INSERT, {"pid": pid, "cycle": cycle, "date": date, "gbq": gbq, "gy": gy, "left": left,
                                   "right": right, "dev": json.dumps(dev) if dev is not None else None,
                                   "reason": reason})


def assert_refused(result, rule):
    assert isinstance(result, psycopg.errors.CheckViolation), result
    assert str(result).startswith(f"protocol rule {rule}: "), str(result)


def add_cycle_actions(trial, pid):
    return [r[0] for r in trial.sql("coord", "SELECT action FROM audit_log WHERE patient_id = %s ORDER BY id",
                                    (pid,))]


def test_raw_sql_cycles_breaking_a_rule_are_refused_by_the_server(trial):
    ok(trial.as_("coord", "enroll", "--patient", "SN-A1", "--site", "Uppsala", "--arm", "2",
                 "--enrolled", "2025-01-02"))
    ok(trial.as_("a", "add-cycle", "--patient", "SN-A1", "--cycle", "1", "--date", "2025-01-13",
                 "--activity-gbq", "7.4", "--kidney-gy", "3.0"))  # the client path
    before = add_cycle_actions(trial, "SN-A1")
    a1 = "SN-A1"
    assert_refused(raw_cycle(trial, "a", a1, 3, "2025-03-24", 7.4, 3.0), "cycle_numbering")  # a gap
    assert_refused(raw_cycle(trial, "a", a1, 1, "2025-03-24", 7.4, 3.0), "cycle_numbering")  # cycle 1 again
    assert_refused(raw_cycle(trial, "a", a1, 0, "2025-03-24", 7.4, 3.0), "cycle_numbering")
    for gbq in (0.0, -7.4, float("nan"), float("inf")):
        assert_refused(raw_cycle(trial, "a", a1, 2, "2025-03-24", gbq, 3.0), "activity")
    assert_refused(raw_cycle(trial, "a", a1, 2, "2025-03-24", 7.6, 3.0), "activity_above_maximum")  # > 7.5 GBq
    for gy, left in ((float("nan"), None), (0.0, None), (3.0, -1.0)):
        assert_refused(raw_cycle(trial, "a", a1, 2, "2025-03-24", 7.4, gy, left=left), "kidney_dose")
    assert_refused(raw_cycle(trial, "a", a1, 2, "2025-01-13", 7.4, 3.0), "cycle_date")  # not after cycle 1
    assert add_cycle_actions(trial, a1) == before  # nothing refused was recorded or audited

    assert raw_cycle(trial, "a", a1, 2, "2025-03-24", 7.5, 27.0) == 1  # valid: cumulative now 30.0 Gy, the limit
    assert_refused(raw_cycle(trial, "a", a1, 3, "2025-06-02", 1.0, 1.0), "dose_limit_reached")
    assert_refused(raw_cycle(trial, "a", a1, 3, "2025-06-02", 1.0, 1.0,  # declared, but no reason
                             dev=[{"code": "dose_limit_reached", "message": "x"}]), "dose_limit_reached")
    # the client refuses the same cycle with its own message, and records it as a deviation with a reason
    refused(trial.as_("a", "add-cycle", "--patient", a1, "--cycle", "3", "--date", "2025-06-02",
                      "--activity-gbq", "1.0", "--kidney-gy", "1.0"), "protocol deviation", "--deviation-reason")
    out = ok(trial.as_("a", "add-cycle", "--patient", a1, "--cycle", "3", "--date", "2025-06-02",
                       "--activity-gbq", "1.0", "--kidney-gy", "1.0", "--deviation-reason", "tumour board decision"))
    assert "dose_limit_reached" in out
    status = json.loads(ok(trial.as_("a", "status", "--patient", a1, "--json")))
    assert status["cumulative_kidney_gy"] == 31.0
    assert add_cycle_actions(trial, a1) == before + ["add_cycle", "add_cycle", "deviation"]
    assert ok(trial.as_("mon", "check")).strip().endswith("database consistent")


def test_raw_sql_for_another_sites_patient_reveals_no_rule(trial):
    ok(trial.as_("coord", "enroll", "--patient", "SN-B1", "--site", "Skåne", "--arm", "2", "--enrolled", "2025-01-02"))
    result = raw_cycle(trial, "a", "SN-B1", 5, "2025-03-24", 99.0, 3.0)  # breaks every rule, but not a's patient
    assert isinstance(result, psycopg.errors.InsufficientPrivilege) and "row-level security" in str(result), result


def test_fixed_cycle_arm_and_declared_activity_deviation(trial):
    ok(trial.as_("coord", "enroll", "--patient", "SN-A3", "--site", "Uppsala", "--arm", "3",
                 "--enrolled", "2025-01-02"))
    dates = ["2025-01-13", "2025-03-24", "2025-06-02", "2025-08-11", "2025-10-20"]
    for cycle, date in enumerate(dates[:4], start=1):
        assert raw_cycle(trial, "a", "SN-A3", cycle, date, 7.5, 3.0) == 1
    assert_refused(raw_cycle(trial, "a", "SN-A3", 5, dates[4], 7.5, 3.0), "fixed_cycles_exceeded")
    ok(trial.as_("coord", "enroll", "--patient", "SN-A4", "--site", "Uppsala", "--arm", "2",
                 "--enrolled", "2025-01-02"))
    assert raw_cycle(trial, "a", "SN-A4", 1, dates[0], 8.0, 3.0, dev=[{"code": "activity_above_maximum"}],
                     reason="vial calibrated high") == 1
    assert ok(trial.as_("mon", "check")).strip().endswith("database consistent")


def test_the_limits_are_the_stored_protocols(postgres_server, tmp_path, capsys, monkeypatch):
    """A trial initialised with a 12 Gy limit, 5 GBq nominal and the higher kidney side enforces those."""
    protocol = default_protocol().to_dict()
    protocol.update(kidney_limit_gy=12.0, nominal_activity_gbq=5.0, limit_basis="max_side")
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(protocol))
    trial = Trial(postgres_server, tmp_path, capsys, monkeypatch, init_args=("--protocol", path))
    ok(trial.as_("coord", "enroll", "--patient", "SN-A1", "--site", "Uppsala", "--arm", "1",
                 "--enrolled", "2025-01-02"))
    assert_refused(raw_cycle(trial, "a", "SN-A1", 1, "2025-01-13", 5.5, 3.0), "activity_above_maximum")
    # mean 5 Gy, right kidney 12 Gy: the max_side basis counts 12 Gy, the limit
    assert raw_cycle(trial, "a", "SN-A1", 1, "2025-01-13", 5.0, 5.0, left=4.0, right=12.0) == 1
    assert_refused(raw_cycle(trial, "a", "SN-A1", 2, "2025-03-24", 1.0, 1.0), "dose_limit_reached")


def test_a_refusal_the_client_did_not_foresee_is_one_line_naming_the_rule(trial, monkeypatch):
    """A client holding other limits than the database (e.g. an old copy) is stopped by the server."""
    from startnet.trial import store as store_module

    ok(trial.as_("coord", "enroll", "--patient", "SN-A1", "--site", "Uppsala", "--arm", "2",
                 "--enrolled", "2025-01-02"))
    lenient = Protocol.from_dict({**default_protocol().to_dict(), "nominal_activity_gbq": 20.0})
    monkeypatch.setattr(store_module.TrialStore, "protocol", property(lambda self: lenient))
    line = refused(trial.as_("a", "add-cycle", "--patient", "SN-A1", "--cycle", "1", "--date", "2025-01-13",
                             "--activity-gbq", "9.0", "--kidney-gy", "3.0"),
                   "refused by the database", "protocol rule activity_above_maximum", "nothing was changed")
    assert "Traceback" not in line
    store = store_module.TrialStore.open(trial.url("a"))
    try:
        with pytest.raises(TrialRuleError, match="protocol rule activity_above_maximum"):
            from startnet.trial.records import CycleEntry

            store.add_cycle("SN-A1", CycleEntry(cycle=1, date=dt.date(2025, 1, 13), activity_gbq=9.0, kidney_gy=3.0))
    finally:
        store.close()


def test_a_database_created_at_0004_upgrades_and_keeps_working(trial_db_url, monkeypatch, capsys):
    """Created, filled and audited by this client at revision 0004, then ``init`` upgrades it to head."""
    from alembic import command

    from startnet.cli import main
    from startnet.trial import store as store_module
    from startnet.trial.db import alembic_config, head_revision
    from startnet.trial.identity import User
    from startnet.trial.records import CycleEntry

    def upgrade_to_0004(engine):
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004")

    is_pg = "://" in trial_db_url
    user = None if is_pg else User(name="physicist", site=None)
    with monkeypatch.context() as m:
        m.setattr(store_module, "upgrade", upgrade_to_0004)
        old = store_module.TrialStore.initialise(trial_db_url, user)
    try:
        with old.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0004"
        old.enroll("SN-1", "Uppsala", 2, dt.date(2025, 1, 2))
        old.add_cycle("SN-1", CycleEntry(cycle=1, date=dt.date(2025, 1, 13), activity_gbq=7.4, kidney_gy=3.0))
    finally:
        old.close()
    for key in ("STARTNET_USER", "STARTNET_USER_SITE", "STARTNET_TRIAL_DB"):
        monkeypatch.delenv(key, raising=False)
    if not is_pg:
        monkeypatch.setenv("STARTNET_USER", "physicist")
    args = ["trial", "--db", trial_db_url]
    assert main(args + ["init"]) == 0, capsys.readouterr().err
    store = store_module.TrialStore.open(trial_db_url, user)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head_revision()
        assert [c["cycle"] for c in store.cycles("SN-1")] == [1]
        store.add_cycle("SN-1", CycleEntry(cycle=2, date=dt.date(2025, 3, 24), activity_gbq=7.4, kidney_gy=3.0))
        if is_pg:
            from sqlalchemy.exc import IntegrityError

            with pytest.raises(IntegrityError, match="protocol rule cycle_numbering"), store.engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO cycle_versions (patient_pk, cycle, version, date, activity_gbq, kidney_gy, "
                    "recorded_at_utc, recorded_by) SELECT id, 5, 1, '2025-06-02', 7.4, 3.0, now(), 'x' "
                    "FROM patients WHERE patient_id = 'SN-1'")
    finally:
        store.close()
    assert main(args + ["check"]) == 0
    assert capsys.readouterr().out.strip().endswith("database consistent")
