"""Issue 12: a trial database that lets no one in where they don't belong.

Against the test session's real PostgreSQL server (scram-sha-256 passwords, so logging in as
another role is really refused): an owner (non-superuser, CREATEROLE) owns the database and
grants site users (Uppsala, Skåne), a coordinator and a monitor through the CLI. Site scoping is
tried through the CLI and with raw SQL on every table; the audit hash chain and the row-vs-audit
comparison are shown to name an owner's edit made with the triggers disabled. SQLite: file mode
0600, client-side hash chain, ``migrate-to`` PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from startnet.cli import main

_n = itertools.count()
SQL_TABLES = ("patients", "cycle_versions", "audit_log", "trial_settings", "trial_users", "alembic_version")


def run(capsys, monkeypatch, db, *args, env=None):
    """``startnet trial --db DB ARGS`` in-process (fast); returns (exit code, stdout, stderr)."""
    for key in ("STARTNET_USER", "STARTNET_USER_SITE", "STARTNET_TRIAL_DB"):
        monkeypatch.delenv(key, raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    code = main(["trial", "--db", str(db), *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def ok(result):
    code, out, err = result
    assert code == 0, err
    return out


def refused(result, *fragments):
    code, out, err = result
    assert code != 0, out
    line = err.strip()
    assert line.startswith("error: ") and "\n" not in line, err  # one clear line, no traceback
    for fragment in fragments:
        assert fragment in line, line
    return line


class Trial:
    """A secured trial database: owner, two site users, a coordinator and a monitor."""

    def __init__(self, server, tmp_path, capsys, monkeypatch, init_args=()):
        self.server, self.tmp, self.capsys, self.monkeypatch = server, tmp_path, capsys, monkeypatch
        tag = f"{os.getpid()}_{next(_n)}"
        self.owner = f"owner_{tag}"
        self.passwords = {self.owner: server.create_owner(self.owner)}
        self.database = f"secure_{tag}"
        self.owner_url = server.create_database(self.database, owner=self.owner)
        ok(self.cli(self.owner_url, "init", *init_args))
        self.logins = {"a": f"uppsala_{tag}", "b": f"skane_{tag}", "coord": f"coord_{tag}", "mon": f"monitor_{tag}"}
        for key, role, site in (("a", "site", "Uppsala"), ("b", "site", "Skane"), ("coord", "coordinator", None),
                                ("mon", "monitor", None)):
            self.grant(self.logins[key], role, site)

    def grant(self, login, role, site=None):
        password = secrets.token_urlsafe(16)
        pw_file = self.tmp / f"{login}.pw"
        fd = os.open(str(pw_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        args = ["grant", login, "--role", role, "--password-file", pw_file] + (["--site", site] if site else [])
        ok(self.cli(self.owner_url, *args))
        self.passwords[login] = password
        self.server.remember_password(login, password)

    def url(self, key):
        return self.server.url(self.database, self.logins.get(key, key))

    def cli(self, db, *args, env=None):
        return run(self.capsys, self.monkeypatch, db, *args, env=env)

    def as_(self, key, *args, env=None):
        return self.cli(self.url(key), *args, env=env)

    def sql(self, key, statement, params=None):
        """One statement in its own transaction as a login; returns rows or the error."""
        login = self.logins.get(key, key)
        with self.server.connect(self.database, user=login, autocommit=True) as conn:
            try:
                cur = conn.execute(statement, params)
                return cur.fetchall() if cur.description else cur.rowcount
            except psycopg.Error as exc:
                return exc


@pytest.fixture
def trial(postgres_server, tmp_path, capsys, monkeypatch):
    return Trial(postgres_server, tmp_path, capsys, monkeypatch)


def _enrol_both(trial):
    for pid, site in (("SN-A1", "Uppsala"), ("SN-B1", "Skåne")):
        ok(trial.as_("coord", "enroll", "--patient", pid, "--site", site, "--arm", "2", "--enrolled", "2025-01-02"))
        ok(trial.as_("coord", "add-cycle", "--patient", pid, "--cycle", "1", "--date", "2025-01-13",
                     "--activity-gbq", "7.4", "--kidney-gy", "3.0"))


def test_wrong_or_missing_password_is_refused(trial):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=trial.server.host, port=trial.server.port, user=trial.logins["a"],
                        dbname=trial.database, password="not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password"):  # no password file: no way in
        psycopg.connect(host=trial.server.host, port=trial.server.port, user=trial.logins["coord"],
                        dbname=trial.database, passfile=str(trial.tmp / "none"))


def test_site_user_cannot_reach_another_sites_patients_by_cli_or_sql(trial):
    _enrol_both(trial)
    before = ok(trial.as_("coord", "export", "--format", "csv", "--all-versions"))
    assert {r["patient_id"] for r in csv.DictReader(io.StringIO(before))} == {"SN-A1", "SN-B1"}

    # through the command line: every attempt on SN-B1 (Skåne) by the Uppsala user is refused
    refused(trial.as_("a", "status", "--patient", "SN-B1"), "unknown patient 'SN-B1'", "sees only site Uppsala")
    refused(trial.as_("a", "history", "--patient", "SN-B1"), "unknown patient 'SN-B1'")
    refused(trial.as_("a", "patients", "--site", "Skåne"), "may not list")
    refused(trial.as_("a", "enroll", "--patient", "SN-B2", "--site", "Skåne", "--arm", "2",
                      "--enrolled", "2025-01-02"), "may not enrol")
    refused(trial.as_("a", "add-cycle", "--patient", "SN-B1", "--cycle", "2", "--date", "2025-03-24",
                      "--activity-gbq", "7.4", "--kidney-gy", "3.0"), "unknown patient 'SN-B1'")
    refused(trial.as_("a", "correct-cycle", "--patient", "SN-B1", "--cycle", "1", "--kidney-gy", "1.0",
                      "--reason", "x"), "unknown patient 'SN-B1'")
    refused(trial.as_("a", "--user", "coordinator", "status", "--patient", "SN-B1"), "--user/--user-site are not")
    assert json.loads(ok(trial.as_("a", "patients", "--json")))[0]["patient"] == "SN-A1"
    assert len(json.loads(ok(trial.as_("a", "patients", "--json")))) == 1
    exported = ok(trial.as_("a", "export", "--format", "csv", "--all-versions"))
    assert {r["patient_id"] for r in csv.DictReader(io.StringIO(exported))} == {"SN-A1"}
    refused(trial.as_("a", "check"), "checked by a coordinator")

    # with raw SQL on every table: nothing of Skåne is visible, nothing can be changed
    assert trial.sql("a", "SELECT patient_id FROM patients") == [("SN-A1",)]
    assert trial.sql("a", "SELECT count(*) FROM cycle_versions")[0][0] == 1
    assert {r[0] for r in trial.sql("a", "SELECT patient_id FROM audit_log")} == {"SN-A1"}
    b_pk = trial.sql("coord", "SELECT id FROM patients WHERE patient_id = 'SN-B1'")[0][0]
    refusals = [
        trial.sql("a", "INSERT INTO patients (patient_id, site, arm, enrolled, created_at_utc, created_by) "
                       "VALUES ('SN-B3', 'Skåne', 2, '2025-01-02', now(), 'x')"),
        trial.sql("a", "INSERT INTO cycle_versions (patient_pk, cycle, version, current, date, activity_gbq, "
                       "kidney_gy, recorded_at_utc, recorded_by) VALUES (%s, 2, 1, TRUE, '2025-03-24', 7.4, 1.0, "
                       "now(), 'x')", (b_pk,)),
        trial.sql("a", "INSERT INTO audit_log (at_utc, user_name, action, entity, entity_key) "
                       "VALUES (now(), 'coordinator', 'enroll', 'patient', 'SN-FAKE')"),
        trial.sql("a", "SELECT startnet_append_audit('enroll', 'patient', 'SN-FAKE', NULL, NULL, NULL)"),
        trial.sql("a", "SELECT * FROM trial_users"),
    ]
    for table in SQL_TABLES:
        column = {"trial_users": "login", "alembic_version": "version_num"}.get(table, "id")
        refusals += [trial.sql("a", f"UPDATE {table} SET {column} = {column}"),
                     trial.sql("a", f"DELETE FROM {table}"),
                     trial.sql("a", f"TRUNCATE {table}"),
                     trial.sql("a", f"ALTER TABLE {table} DISABLE TRIGGER ALL"),
                     trial.sql("a", f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")]
    assert all(isinstance(r, psycopg.Error) for r in refusals), [r for r in refusals if not isinstance(r, Exception)]
    expected = ("permission denied", "row-level security", "must be owner")
    assert all(any(m in str(r) for m in expected) for r in refusals), [
        str(r) for r in refusals if not any(m in str(r) for m in expected)]
    # the same Uppsala user may still record its own patient, and the coordinator sees no change to Skåne
    ok(trial.as_("a", "add-cycle", "--patient", "SN-A1", "--cycle", "2", "--date", "2025-03-24",
                 "--activity-gbq", "7.4", "--kidney-gy", "3.0"))
    after = ok(trial.as_("coord", "export", "--format", "csv", "--all-versions"))
    b_rows = [line for line in after.splitlines() if line.startswith("SN-B1")]
    assert b_rows == [line for line in before.splitlines() if line.startswith("SN-B1")]
    assert after.startswith(before.splitlines()[0])
    out = ok(trial.as_("coord", "check"))
    assert out.strip().endswith("database consistent")


def test_coordinator_export_byte_identical_after_refused_attempts(trial):
    _enrol_both(trial)
    before = ok(trial.as_("coord", "export", "--format", "csv", "--all-versions"))
    refused(trial.as_("b", "correct-cycle", "--patient", "SN-A1", "--cycle", "1", "--kidney-gy", "9",
                      "--reason", "x"))
    refused(trial.as_("b", "enroll", "--patient", "SN-A9", "--site", "Uppsala", "--arm", "2",
                      "--enrolled", "2025-01-02"))
    refused(trial.as_("mon", "add-cycle", "--patient", "SN-A1", "--cycle", "2", "--date", "2025-03-24",
                      "--activity-gbq", "7.4", "--kidney-gy", "3.0"), "monitor (read-only)")
    for statement in ("DELETE FROM cycle_versions", "UPDATE cycle_versions SET kidney_gy = 0",
                      "UPDATE patients SET site = 'Skåne'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        assert isinstance(trial.sql("b", statement), psycopg.Error)
    assert ok(trial.as_("coord", "export", "--format", "csv", "--all-versions")) == before
    assert ok(trial.as_("mon", "check")).strip().endswith("database consistent")


def test_monitor_reads_every_site_and_writes_nothing(trial):
    _enrol_both(trial)
    assert [p["patient"] for p in json.loads(ok(trial.as_("mon", "patients", "--json")))] == ["SN-B1", "SN-A1"]
    assert json.loads(ok(trial.as_("mon", "status", "--patient", "SN-B1", "--json")))["cumulative_kidney_gy"] == 3.0
    refused(trial.as_("mon", "enroll", "--patient", "SN-M1", "--site", "Uppsala", "--arm", "2",
                      "--enrolled", "2025-01-02"), "monitor (read-only)")
    for statement in ("INSERT INTO patients (patient_id, site, arm, enrolled, created_at_utc, created_by) "
                      "VALUES ('SN-M1', 'Uppsala', 2, '2025-01-02', now(), 'x')",
                      "UPDATE cycle_versions SET remarks = 'x'", "DELETE FROM patients", "TRUNCATE patients"):
        assert "permission denied" in str(trial.sql("mon", statement))
    assert trial.sql("mon", "SELECT count(*) FROM audit_log")[0][0] > 4


def test_revoking_ends_access_at_the_next_connection(trial):
    _enrol_both(trial)
    with trial.server.connect(trial.database, user=trial.logins["a"]) as open_session:
        assert open_session.execute("SELECT count(*) FROM patients").fetchone()[0] == 1
        users = json.loads(ok(trial.cli(trial.owner_url, "users", "--json")))
        assert {(u["login"], u["role"], u["site"]) for u in users} >= {(trial.logins["a"], "site", "Uppsala")}
        assert "revoked login" in ok(trial.cli(trial.owner_url, "revoke", trial.logins["a"]))
        # the session already open gets nothing more: its group membership and trial_users row are gone
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            open_session.execute("SELECT count(*) FROM patients")
    # the role is disabled (NOLOGIN), so the refusal is at login, not at the database's CONNECT privilege
    refused(trial.as_("a", "status", "--patient", "SN-A1"), "cannot be opened", "not permitted to log in")
    assert trial.logins["a"] not in {u["login"] for u in json.loads(ok(trial.cli(trial.owner_url, "users", "--json")))}
    refused(trial.as_("coord", "grant", "someone", "--role", "monitor"), "only the owner")
    history = json.loads(ok(trial.as_("coord", "history", "--patient", "SN-A1", "--json")))
    assert history["patient"]["patient"] == "SN-A1"
    actions = [r[0] for r in trial.sql("coord", "SELECT action FROM audit_log WHERE entity = 'user' ORDER BY id")]
    assert actions == ["grant"] * 4 + ["revoke"]


def test_revoked_login_cannot_log_in_anywhere_until_granted_again(trial):
    _enrol_both(trial)
    login = trial.logins["a"]
    assert json.loads(ok(trial.as_("a", "status", "--patient", "SN-A1", "--json")))["cumulative_kidney_gy"] == 3.0
    trial.server.connect("postgres", user=login).close()  # before: the login logs in (any database)
    assert "revoked login" in ok(trial.cli(trial.owner_url, "revoke", login))
    line = refused(trial.as_("a", "status", "--patient", "SN-A1"), "cannot be opened", "not permitted to log in",
                   "revoked or disabled", "grant")
    assert "Traceback" not in line
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        trial.server.connect("postgres", user=login)  # not only this trial database: the role cannot log in
    # the role is kept (disabled), and the audit trail naming it is intact
    assert trial.sql("coord", f"SELECT rolcanlogin FROM pg_roles WHERE rolname = '{login}'") == [(False,)]
    assert [r[0] for r in trial.sql("coord", "SELECT action FROM audit_log WHERE entity = 'user' "
                                             f"AND entity_key = '{login}' ORDER BY id")] == ["grant", "revoke"]
    assert ok(trial.as_("mon", "check")).strip().endswith("database consistent")
    refused(trial.cli(trial.owner_url, "revoke", trial.owner), "owner connected now")
    # granted again (same login, its password kept): it logs in and works as before
    assert "updated login" in ok(trial.cli(trial.owner_url, "grant", login, "--role", "site", "--site", "Uppsala"))
    assert json.loads(ok(trial.as_("a", "status", "--patient", "SN-A1", "--json")))["cumulative_kidney_gy"] == 3.0
    ok(trial.as_("a", "add-cycle", "--patient", "SN-A1", "--cycle", "2", "--date", "2025-03-24",
                 "--activity-gbq", "7.4", "--kidney-gy", "3.0"))
    assert ok(trial.as_("mon", "check")).strip().endswith("database consistent")


def test_audit_names_the_database_login_whatever_startnet_user_says(trial):
    _enrol_both(trial)
    env = {"STARTNET_USER": "mallory", "STARTNET_USER_SITE": "Skåne"}
    ok(trial.as_("a", "correct-cycle", "--patient", "SN-A1", "--cycle", "1", "--kidney-gy", "2.5",
                 "--reason", "re-segmented", env=env))
    history = json.loads(ok(trial.as_("coord", "history", "--patient", "SN-A1", "--json")))
    assert [(a["action"], a["user"], a["user_site"]) for a in history["audit"]] == [
        ("enroll", trial.logins["coord"], None), ("add_cycle", trial.logins["coord"], None),
        ("correct_cycle", trial.logins["a"], "Uppsala")]
    assert [v["recorded_by"] for v in history["versions"]] == [trial.logins["coord"], trial.logins["a"]]
    # a forged creator name in raw SQL is overwritten by the login
    trial.sql("a", "INSERT INTO patients (patient_id, site, arm, enrolled, created_at_utc, created_by) "
                   "VALUES ('SN-A2', 'Uppsala', 2, '2025-01-02', now(), 'coordinator')")
    assert trial.sql("coord", "SELECT created_by FROM patients WHERE patient_id = 'SN-A2'") == [(trial.logins["a"],)]
    assert trial.sql("coord", "SELECT user_name FROM audit_log WHERE entity_key = 'SN-A2'") == [(trial.logins["a"],)]
    assert ok(trial.as_("coord", "check")).strip().endswith("database consistent")


def _as_owner(trial, *statements):
    with trial.server.connect(trial.database, user=trial.owner) as conn:  # one transaction
        for statement in statements:
            conn.execute(statement)


def test_owner_edits_with_triggers_disabled_are_named_by_check(trial):
    _enrol_both(trial)
    assert trial.as_("coord", "check")[0] == 0
    audit_id = trial.sql("coord", "SELECT id FROM audit_log WHERE action = 'add_cycle' AND patient_id = 'SN-B1'")[0][0]
    _as_owner(trial, "ALTER TABLE audit_log DISABLE TRIGGER USER",
              f"UPDATE audit_log SET user_name = 'somebody else' WHERE id = {audit_id}",
              "ALTER TABLE audit_log ENABLE TRIGGER USER")
    code, out, _ = trial.as_("coord", "check")
    assert code == 1 and f"audit row #{audit_id} (add_cycle SN-B1/cycle 1): content altered" in out, out

    (trial.tmp / "second").mkdir()
    fresh = Trial(trial.server, trial.tmp / "second", trial.capsys, trial.monkeypatch)  # an untouched trial
    _enrol_both(fresh)
    version_id = fresh.sql("coord", "SELECT v.id FROM cycle_versions v JOIN patients p ON p.id = v.patient_pk "
                                    "WHERE p.patient_id = 'SN-A1'")[0][0]
    with fresh.server.connect(fresh.database, user=fresh.owner) as conn:
        for statement in ("ALTER TABLE cycle_versions DISABLE TRIGGER USER",
                          f"UPDATE cycle_versions SET kidney_gy = 1.5 WHERE id = {version_id}",
                          "ALTER TABLE cycle_versions ENABLE TRIGGER USER"):
            conn.execute(statement)
    code, out, _ = fresh.as_("coord", "check")
    assert code == 1 and f"cycle_versions row #{version_id} (SN-A1/cycle 1 v1): differs from what audit row" in out
    assert "in kidney_gy" in out

    removed = fresh.sql("coord", "SELECT id FROM audit_log WHERE action = 'enroll' AND patient_id = 'SN-B1'")[0][0]
    with fresh.server.connect(fresh.database, user=fresh.owner) as conn:
        for statement in ("ALTER TABLE audit_log DISABLE TRIGGER USER", f"DELETE FROM audit_log WHERE id = {removed}",
                          "ALTER TABLE audit_log ENABLE TRIGGER USER"):
            conn.execute(statement)
    code, out, _ = fresh.as_("coord", "check")
    assert code == 1 and f"chain broken after audit row #{removed - 1}" in out, out


def test_superuser_insert_with_triggers_disabled_is_named(trial):
    _enrol_both(trial)
    with trial.server.connect(trial.database) as conn:  # the cluster's superuser
        conn.execute("SET session_replication_role = replica")  # no user triggers fire at all
        conn.execute("INSERT INTO cycle_versions (patient_pk, cycle, version, current, date, activity_gbq, "
                     "kidney_gy, recorded_at_utc, recorded_by) SELECT id, 2, 1, TRUE, '2025-03-24', 7.4, 0.1, "
                     "now(), 'nobody' FROM patients WHERE patient_id = 'SN-B1' RETURNING id")
    code, out, _ = trial.as_("mon", "check")
    assert code == 1 and "(SN-B1/cycle 2 v1): no audit entry recorded it" in out, out


# --- no password in any file startnet writes -------------------------------------------------
def test_no_password_in_files_or_messages(trial, tmp_path):
    _enrol_both(trial)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STARTNET_", "PG"))}
    env.update(HOME=str(work), STARTNET_TRIAL_DB=trial.url("a"))
    secret = trial.passwords[trial.logins["a"]]
    with_password = trial.url("a").replace(f"{trial.logins['a']}@", f"{trial.logins['a']}:{secret}@")
    results = work / "results.json"
    results.write_text(json.dumps({"patient_id": "SN-A1", "cycle": 2, "kidneys_mean_gy": 2.0,
                                   "injected_activity_mbq": 7400.0}))
    outputs = []
    for args in (["status", "--patient", "SN-A1", "--json"], ["export", "--format", "csv", "--out", work / "a.csv"],
                 ["--db", with_password, "add-cycle", "--patient", "SN-A1", "--cycle", "2", "--date", "2025-03-24",
                  "--activity-gbq", "7.4", "--results", results],
                 ["--db", with_password.replace(trial.database, "no_such_db"), "status", "--patient", "SN-A1"],
                 ["--db", with_password, "history", "--patient", "SN-A1"]):
        proc = subprocess.run([sys.executable, "-m", "startnet", "trial", *map(str, args)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=120)
        outputs.append(proc.stdout + proc.stderr)
    assert "***" in outputs[3] and "no_such_db" in outputs[3]  # the error names the URL, masked
    assert "recorded cycle 2" in outputs[2]
    written = [p for p in work.rglob("*") if p.is_file()]
    assert any(p.name == "a.csv" for p in written)
    for text in outputs + [p.read_bytes().decode("utf-8", "replace") for p in written]:
        for password in trial.passwords.values():
            assert password not in text


# --- SQLite: owner-only file, client-side chain, migrate-to PostgreSQL ------------------------------
def test_sqlite_file_is_private_and_its_chain_is_checked(tmp_path, capsys, monkeypatch):
    db = tmp_path / "trial.db"
    old = os.umask(0o022)
    try:
        ok(run(capsys, monkeypatch, db, "init"))
    finally:
        os.umask(old)
    ok(run(capsys, monkeypatch, db, "enroll", "--patient", "SN-1", "--site", "Uppsala", "--arm", "2",
           "--enrolled", "2025-01-02"))
    for path in (db, Path(f"{db}-wal")):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert ok(run(capsys, monkeypatch, db, "check")).strip().endswith("database consistent")
    conn = sqlite3.connect(db)  # anyone with the file can do this: tamper evidence, not prevention
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET user_name = 'someone else' WHERE action = 'enroll'")
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, monkeypatch, db, "check")
    assert code == 1 and "audit row #2 (enroll SN-1): content altered" in out, out
    refused(run(capsys, monkeypatch, db, "grant", "x_user", "--role", "monitor"), "SQLite has no logins")


def test_migrate_sqlite_to_postgresql_keeps_every_row_and_the_chain(postgres_server, tmp_path, capsys, monkeypatch):
    db = tmp_path / "local.db"
    ok(run(capsys, monkeypatch, db, "init"))
    for pid in ("SN-1", "SN-2"):
        ok(run(capsys, monkeypatch, db, "--user", "ulla", "enroll", "--patient", pid, "--site", "Uppsala",
               "--arm", "2", "--enrolled", "2025-01-02"))
        ok(run(capsys, monkeypatch, db, "--user", "ulla", "add-cycle", "--patient", pid, "--cycle", "1",
               "--date", "2025-01-13", "--activity-gbq", "7.4", "--kidney-gy", "3.0"))
    ok(run(capsys, monkeypatch, db, "correct-cycle", "--patient", "SN-1", "--cycle", "1", "--kidney-gy", "2.5",
           "--reason", "re-segmented"))
    owner = f"mig_{os.getpid()}_{next(_n)}"
    postgres_server.create_owner(owner)
    url = postgres_server.create_database(f"migrated_{owner}", owner=owner)
    out = ok(run(capsys, monkeypatch, db, "migrate-to", url))
    assert "copied 2 patients, 3 cycle versions and 6 audit rows" in out
    source = sqlite3.connect(db)
    src_audit = source.execute("SELECT id, user_name, action, row_hash FROM audit_log ORDER BY id").fetchall()
    with postgres_server.connect(f"migrated_{owner}", user=owner) as conn:
        dest_audit = conn.execute("SELECT id, user_name, action, row_hash FROM audit_log ORDER BY id").fetchall()
        assert conn.execute("SELECT count(*) FROM cycle_versions WHERE current").fetchone()[0] == 2
    assert [tuple(r) for r in dest_audit[:-1]] == src_audit and dest_audit[-1][2] == "migrate"
    assert ok(run(capsys, monkeypatch, url, "check")).strip().endswith("database consistent")
    assert ok(run(capsys, monkeypatch, db, "check")).strip().endswith("database consistent")
    st = json.loads(ok(run(capsys, monkeypatch, url, "status", "--patient", "SN-1", "--json")))
    assert st["cumulative_kidney_gy"] == 2.5
    refused(run(capsys, monkeypatch, db, "migrate-to", url), "already holds a trial")
