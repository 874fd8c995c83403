"""``startnet trial ...`` end to end in subprocesses: the CLI contract of issue 6 item 5.

Exit codes: 0 success, 2 bad input (unknown patient, bad date, ...), 3 refused by the trial
rules (ineligible, duplicate cycle, deviation without reason, other site); errors are one line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import subprocess
import sys

import pytest

from startnet.cli import main
from startnet.trial.records import CSV_COLUMNS, CycleEntry
from startnet.trial.store import TrialStore


def trial(db, *args, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STARTNET_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "startnet", "trial", "--db", str(db), *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=120)


def ok(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def refused(proc, code, *fragments):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    line = proc.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line, line  # one line, no traceback
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.mark.slow
def test_cli_contract_end_to_end(trial_db_url, tmp_path):
    db = trial_db_url
    ok(trial(db, "init"))
    eligible = tmp_path / "eligible.json"
    eligible.write_text(json.dumps({"age_years": 61, "ecog": 0, "labs": {"gfr": 82, "hb_g_l": 131}}))
    ok(trial(db, "enroll", "--patient", "SN-001", "--site", "Sahlgrenska", "--arm", "2", "--enrolled",
             "2025-01-02", "--eligibility", eligible))
    ineligible = tmp_path / "ineligible.json"
    ineligible.write_text(json.dumps({"labs": {"gfr_ml_min_1_73m2": 48, "hb_g_l": 88}}))
    refused(trial(db, "enroll", "--patient", "SN-002", "--site", "Skane", "--arm", "1", "--enrolled", "2025-01-02",
                  "--eligibility", ineligible), 3, "not eligible", "GFR > 50", "Hb > 90")

    # hand case: 5 cycles x 5.0 Gy = 25 Gy, then 3.0 Gy at 7.5 GBq -> 28 Gy, 0.4 Gy/GBq -> next max 5.0 GBq
    dates = ["2025-01-13", "2025-03-24", "2025-06-02", "2025-08-11", "2025-10-20", "2025-12-29"]
    ok(trial(db, "add-cycle", "--patient", "SN-001", "--cycle", 1, "--date", dates[0],
             "--activity-gbq", "7.5", "--kidney-gy", "5.0"))
    store = TrialStore.open(db)  # cycles 2-5 through the API (each CLI start costs ~1 s)
    for k in range(2, 6):
        store.add_cycle("SN-001", CycleEntry(k, dt.date.fromisoformat(dates[k - 1]), 7.5, 5.0))
    store.close()
    results = tmp_path / "results.json"
    results.write_text(json.dumps({
        "patient_id": "SN-001", "cycle": 6, "injected_activity_mbq": 7500.0, "kidneys_mean_gy": 3.0,
        "kidneys_uncertainty_pct": 10.0, "kidneys_bed_gy": 3.4,
        "structures": {"kidney_left": {"mean_gy": 2.8}, "kidney_right": {"mean_gy": 3.2}},
        "provenance": {"pipeline": "test"}}))
    ok(trial(db, "add-cycle", "--patient", "SN-001", "--cycle", "6", "--date", dates[5],
             "--activity-gbq", "7.5", "--results", results))

    st = json.loads(ok(trial(db, "status", "--patient", "SN-001", "--json")))
    assert st["cumulative_kidney_gy"] == pytest.approx(28.0)
    assert st["remaining_kidney_gy"] == pytest.approx(2.0)
    assert st["limit_gy"] == 30.0
    assert [(c["cycle"], c["date"], c["activity_gbq"], c["kidney_gy"]) for c in st["cycles"]] == [
        (k, dates[k - 1], 7.5, 5.0 if k < 6 else 3.0) for k in range(1, 7)]
    assert (st["cycles"][5]["kidney_left_gy"], st["cycles"][5]["kidney_right_gy"]) == (2.8, 3.2)
    assert st["cycles"][5]["kidney_uncertainty_pct"] == 10.0 and st["cycles"][5]["kidney_bed_gy"] == 3.4
    assert st["cycles"][5]["dosimetry_source"] == str(results.resolve())
    nxt = st["next_cycle"]
    assert nxt["allowed"] is True and nxt["max_activity_gbq"] == pytest.approx(5.0)
    assert (nxt["earliest_date"], nxt["latest_date"]) == ("2026-02-23", "2026-03-23")  # +8 / +12 weeks
    assert isinstance(nxt["reason"], str) and nxt["reason"]
    # planning under uncertainty (issue 10): both numbers and the last-cycle flag are JSON keys
    assert 0.3 < nxt["probability_limit_exceeded"] < 0.7  # the point estimate: about even odds
    # cycles 1-5 have no recorded uncertainty (19 % assumed): 28 Gy is already > 5 % likely to hide > 30 Gy
    assert nxt["max_activity_gbq_95"] == 0.0
    assert nxt["last_cycle_expected"] is True  # 2 Gy left < 0.4 Gy/GBq x 7.5 GBq = 3 Gy
    assert nxt["planning_confidence"] is None and nxt["planning_cv"] > 0
    text = ok(trial(db, "status", "--patient", "SN-001"))
    assert "at most 5.000 GBq" in text and "LAST CYCLE EXPECTED" in text
    assert f"at most {math.floor(nxt['max_activity_gbq_95'] * 1000 + 1e-6) / 1000:.3f} GBq keeps it <= 5 %" in text

    refused(trial(db, "add-cycle", "--patient", "SN-001", "--cycle", "7", "--date", "2026-03-09",
                  "--activity-gbq", "6.0", "--kidney-gy", "2.4"), 3, "protocol deviation", "5.000 GBq",
            "--deviation-reason")
    out = ok(trial(db, "add-cycle", "--patient", "SN-001", "--cycle", "7", "--date", "2026-03-09",
                   "--activity-gbq", "6.0", "--kidney-gy", "2.4", "--deviation-reason", "tumour board decision"))
    assert "protocol deviation recorded (activity_above_maximum)" in out
    refused(trial(db, "add-cycle", "--patient", "SN-001", "--cycle", "7", "--date", "2026-03-09",
                  "--activity-gbq", "5.0", "--kidney-gy", "2.0"), 3, "cycle 7 already recorded for patient SN-001")

    st = json.loads(ok(trial(db, "status", "--patient", "SN-001", "--json")))
    assert st["cumulative_kidney_gy"] == pytest.approx(30.4)
    assert st["next_cycle"]["allowed"] is False and st["next_cycle"]["max_activity_gbq"] == 0.0
    assert "limit" in st["next_cycle"]["reason"]

    history = ok(trial(db, "history", "--patient", "SN-001"))
    assert "cycle 7 v1 (current)" in history and "deviation SN-001/cycle 7" in history
    rows = list(csv.DictReader(io.StringIO(ok(trial(db, "export", "--format", "csv")))))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == 7
    assert rows[6]["deviations"] == "activity_above_maximum" and rows[6]["deviation_reason"] == "tumour board decision"


def test_cli_errors_are_one_line(tmp_path):
    db = tmp_path / "trial.db"
    refused(trial(db, "status", "--patient", "SN-001"), 2, "does not exist", "init")
    ok(trial(f"sqlite:///{db}", "init"))
    assert db.exists()
    ok(trial(db, "enroll", "--patient", "SN-001", "--site", "Uppsala", "--arm", "3", "--enrolled", "2025-01-02"))
    refused(trial(db, "status", "--patient", "SN-404"), 2, "unknown patient 'SN-404'")
    refused(trial(db, "add-cycle", "--patient", "SN-001", "--cycle", "1", "--date", "2025-13-01",
                  "--activity-gbq", "7.5", "--kidney-gy", "3"), 2, "--date '2025-13-01'", "YYYY-MM-DD")


def run_main(capsys, monkeypatch, db, *args, env=None):
    """The same command line in-process (fast), for the many refusal cases."""
    for key in ("STARTNET_USER", "STARTNET_USER_SITE", "STARTNET_TRIAL_DB"):
        monkeypatch.delenv(key, raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    code = main(["trial", "--db", str(db), *map(str, args)])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def test_cli_refusals_scoping_and_corrections(tmp_path, capsys, monkeypatch):
    db = tmp_path / "trial.db"

    def cli(*args, env=None):
        return run_main(capsys, monkeypatch, db, *args, env=env)

    ok(cli("init"))
    ok(cli("--user", "coordinator", "enroll", "--patient", "SN-001", "--site", "Uppsala", "--arm", "3",
           "--enrolled", "2025-01-02"))
    refused(cli("add-cycle", "--patient", "SN-001", "--cycle", "1", "--date", "2025-01-13",
                "--activity-gbq", "lots", "--kidney-gy", "3"), 2, "--activity-gbq 'lots'")
    refused(cli("enroll", "--patient", "190101-1234", "--site", "Uppsala", "--arm", "2",
                "--enrolled", "2025-01-02"), 2, "personal identity number")
    refused(cli("enroll", "--patient", "SN-001", "--site", "Uppsala", "--arm", "2",
                "--enrolled", "2025-01-02"), 3, "already enrolled")
    refused(cli("enroll", "--patient", "SN-009", "--site", "Uppsala", "--arm", "two",
                "--enrolled", "2025-01-02"), 2, "--arm 'two'")
    refused(cli("add-cycle", "--patient", "SN-001", "--cycle", "1", "--date", "2025-01-13",
                "--activity-gbq", "7.5", "--results", tmp_path / "missing.json"), 2, "missing.json: not found")
    env = {"STARTNET_USER": "sven", "STARTNET_USER_SITE": "Skåne"}
    refused(cli("add-cycle", "--patient", "SN-001", "--cycle", "1", "--date", "2025-01-13",
                "--activity-gbq", "7.5", "--kidney-gy", "3", env=env), 3, "'sven' (site Skåne) may not")
    refused(cli("status", "--patient", "SN-001", env=env), 3, "may not view")
    ok(cli("--user", "ulla", "--user-site", "uppsala", "add-cycle", "--patient", "SN-001", "--cycle", "1",
           "--date", "2025-01-13", "--activity-gbq", "7.5", "--kidney-gy", "3"))
    refused(cli("correct-cycle", "--patient", "SN-001", "--cycle", "1", "--kidney-gy", "2.5",
                "--reason", " "), 2, "needs a reason")
    out = ok(cli("correct-cycle", "--patient", "SN-001", "--cycle", "1", "--kidney-gy", "2.5",
                 "--reason", "re-segmented", "--user", "ulla", "--json"))
    assert json.loads(out)["version"] == 2
    audit = json.loads(ok(cli("history", "--patient", "SN-001", "--json")))["audit"]
    assert [(a["action"], a["user"], a["user_site"]) for a in audit] == [
        ("enroll", "coordinator", None), ("add_cycle", "ulla", "Uppsala"), ("correct_cycle", "ulla", None)]
    assert (audit[2]["old"]["kidney_gy"], audit[2]["new"]["kidney_gy"]) == (3.0, 2.5)
    checked = ok(cli("check")).strip().splitlines()  # issue 12: the audit chain's head is shown too
    assert checked[-1] == "database consistent" and checked[0].startswith("audit trail intact: 4 rows, chain head ")
    listed = json.loads(ok(cli("patients", "--json")))
    assert [p["patient"] for p in listed] == ["SN-001"]
    assert ok(cli("patients", env={"STARTNET_USER_SITE": "Skane"})) == ""
    refused(cli("export", "--format", "csv", "--out", tmp_path / "no" / "x.csv"), 2, "cannot be written")
    ok(cli("export", "--format", "csv", "--out", tmp_path / "x.csv"))
    assert (tmp_path / "x.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    # a pipeline run without the trial pseudonym: recorded, with the mismatch shown and stored
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"patient_id": "STARTNET-PH-001", "cycle": None, "injected_activity_mbq": 7400.0,
                                   "kidneys_mean_gy": 3.2}))
    proc = cli("add-cycle", "--patient", "SN-001", "--cycle", "2", "--date", "2025-03-24", "--activity-gbq", "7.4",
               "--results", results, "--json")
    record = json.loads(ok(proc))
    assert "warning: dosimetry result patient_id 'STARTNET-PH-001' is not the trial patient 'SN-001'" in proc.stderr
    assert record["dosimetry"]["record_warnings"] == [
        "dosimetry result patient_id 'STARTNET-PH-001' is not the trial patient 'SN-001'"]
    results.write_text(json.dumps({"cycle": 2, "kidneys_mean_gy": 3.2}))
    refused(cli("add-cycle", "--patient", "SN-001", "--cycle", "3", "--date", "2025-06-02", "--activity-gbq", "7.4",
                "--results", results), 2, "cycle 2 is not 3")


def test_cli_init_with_protocol_file(tmp_path, capsys, monkeypatch):
    db = tmp_path / "trial.db"
    protocol = tmp_path / "protocol.json"
    protocol.write_text(json.dumps({"kidney_limit_gy": 23.0, "planning_estimate": "max", "planning_confidence": 0.95,
                                    "arms": [{"arm": 2, "interval_weeks": 8, "interval_tolerance_weeks": 1}]}))
    ok(run_main(capsys, monkeypatch, db, "init", "--protocol", protocol))
    ok(run_main(capsys, monkeypatch, db, "enroll", "--patient", "SN-7", "--site", "Karolinska", "--arm", "2",
                "--enrolled", "2025-01-02"))
    refused(run_main(capsys, monkeypatch, db, "enroll", "--patient", "SN-8", "--site", "Karolinska", "--arm", "1",
                     "--enrolled", "2025-01-02"), 2, "arm 1 is not defined")
    ok(run_main(capsys, monkeypatch, db, "add-cycle", "--patient", "SN-7", "--cycle", "1", "--date", "2025-01-13",
                "--activity-gbq", "7.5", "--kidney-gy", "7.5"))
    st = json.loads(ok(run_main(capsys, monkeypatch, db, "status", "--patient", "SN-7", "--json")))
    assert st["limit_gy"] == 23.0 and st["remaining_kidney_gy"] == pytest.approx(15.5)
    # 15.5 Gy left at 1.0 Gy/GBq -> nominal 7.5; window 8 +- 1 weeks after 2025-01-13
    assert (st["next_cycle"]["earliest_date"], st["next_cycle"]["latest_date"]) == ("2025-03-03", "2025-03-17")
    # planned at 95 % confidence: the allowed activity is the one keeping P(exceed) <= 5 %
    assert st["next_cycle"]["planning_confidence"] == 0.95
    assert st["next_cycle"]["max_activity_gbq"] == st["next_cycle"]["max_activity_gbq_95"]
    assert st["next_cycle"]["probability_limit_exceeded"] <= 0.05
    protocol.write_text(json.dumps({"limit": 23.0}))
    refused(run_main(capsys, monkeypatch, tmp_path / "other.db", "init", "--protocol", protocol), 2,
            "unknown parameter(s) limit")
