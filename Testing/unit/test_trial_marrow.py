"""Red-marrow dose per cycle and cumulative in the trial database (SQLite and PostgreSQL), with haematology."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from startnet.errors import InputError
from startnet.trial import summary
from startnet.trial.identity import User
from startnet.trial.marrow import haematology, marrow_summary
from startnet.trial.results import parse_results
from startnet.trial.store import TrialStore

D0 = dt.date(2025, 1, 13)


def _results(cycle: int, blood_gy=None, image_gy=None):
    data = {"patient_id": "SN-M1", "cycle": cycle, "kidneys_mean_gy": 4.0 + cycle, "kidneys_uncertainty_pct": 8.0,
            "structures": {}}
    marrow = {}
    if blood_gy is not None:
        marrow.update(method="blood-based (EANM SOP, Hindorf 2010)", dose_gy=blood_gy, self_dose_gy=0.8 * blood_gy,
                      cross_dose_gy=0.2 * blood_gy, uncertainty_gy=0.1 * blood_gy, red_marrow_to_blood_ratio=1.0,
                      assumptions={"self_dose": "long text not kept in the database"})
    if image_gy is not None:
        marrow["image_based"] = {"method": "image-based (lumbar vertebrae VOI)", "dose_gy": image_gy,
                                 "self_dose_gy": image_gy, "cross_dose_gy": None, "uncertainty_gy": 0.3 * image_gy,
                                 "mass_model": {"model": "voi"}, "voi_source": "segmentation"}
    if marrow:
        data["marrow"] = marrow
    return data


@pytest.fixture
def store(trial_db_url):
    user = None if trial_db_url.startswith("postgresql") else User("physicist", None)
    s = TrialStore.initialise(trial_db_url, user)
    yield s
    s.close()


def test_marrow_per_cycle_and_cumulative_with_haematology(store):
    store.enroll("SN-M1", "Uppsala", 1, dt.date(2025, 1, 2))
    labs = [{"platelets": 250, "neutrophils_1e9_l": 4.1, "hb_g_l": 130},
            {"PLT": 180, "ANC": 2.9, "hb": 121},
            {"labs": {"platelets_10e9_l": 150, "neutrophils": 2.2}}]
    marrow = [(0.40, 0.30), (0.35, None), (None, 0.25)]
    for i, ((blood, image), lab) in enumerate(zip(marrow, labs), start=1):
        parsed = parse_results(_results(i, blood, image), f"run {i}")
        store.add_cycle("SN-M1", parsed.to_entry(i, D0 + dt.timedelta(weeks=10 * (i - 1)), 7.4, labs=lab))
    st = summary.status(store, "SN-M1")
    first = st["cycles"][0]
    assert first["marrow"]["blood_based"]["dose_gy"] == 0.40 and first["marrow"]["image_based"]["dose_gy"] == 0.30
    assert "assumptions" not in first["marrow"]["blood_based"]  # a summary, not the whole block
    assert first["haematology"] == {"hb_g_l": 130.0, "platelets_1e9_l": 250.0, "leukocytes_1e9_l": None,
                                    "neutrophils_1e9_l": 4.1}
    assert st["cycles"][1]["haematology"]["platelets_1e9_l"] == 180.0
    assert st["cycles"][2]["haematology"]["neutrophils_1e9_l"] == 2.2
    assert [c["cumulative_marrow_gy"]["blood_based"] for c in st["cycles"]] == [
        pytest.approx(0.40), pytest.approx(0.75), None]
    blood, image = st["marrow"]["blood_based"], st["marrow"]["image_based"]
    assert blood["cumulative_gy"] == pytest.approx(0.75) and blood["cycles_missing"] == [3]
    assert blood["cumulative_uncertainty_gy"] == pytest.approx(0.075)  # linear: same assumptions every cycle
    assert image["cumulative_gy"] == pytest.approx(0.55) and image["cycles_included"] == [1, 3]
    # a correction supersedes the marrow of the old version in the history's cumulative
    corrected = parse_results(_results(2, 0.45, None), "run 2 again")
    store.correct_cycle("SN-M1", 2, {"dosimetry": corrected.provenance}, "blood samples re-counted")
    history = summary.history(store, "SN-M1")
    assert history["marrow"]["blood_based"]["cumulative_gy"] == pytest.approx(0.85)
    assert [v["marrow"]["blood_based"]["dose_gy"] for v in history["versions"] if v["cycle"] == 2] == [0.35, 0.45]


def test_bad_marrow_block_is_one_line():
    with pytest.raises(InputError, match=r"run 1: marrow.image_based.dose_gy must be a finite number >= 0"):
        parse_results(_results(1, None, -0.1), "run 1")
    with pytest.raises(InputError, match="'marrow' must be an object"):
        marrow_summary([1, 2], "run 1")
    assert marrow_summary({"warnings": []}, "run") is None
    assert haematology(None)["platelets_1e9_l"] is None


def test_trial_status_and_history_json_report_marrow(tmp_path):
    db = str(tmp_path / "trial.db")
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_results(1, 0.42, 0.31)))
    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps({"platelets": 210, "neutrophils": 3.3}))

    def trial(*args):
        return subprocess.run([sys.executable, "-m", "startnet", "trial", "--db", db, "--user", "physicist", *args],
                              capture_output=True, text=True, timeout=120)

    assert trial("init").returncode == 0
    assert trial("enroll", "--patient", "SN-M1", "--site", "Uppsala", "--arm", "2",
                 "--enrolled", "2025-01-02").returncode == 0
    added = trial("add-cycle", "--patient", "SN-M1", "--cycle", "1", "--date", "2025-01-13", "--activity-gbq", "7.4",
                  "--results", str(results), "--labs", str(labs))
    assert added.returncode == 0, added.stderr
    status = trial("status", "--patient", "SN-M1", "--json")
    assert status.returncode == 0, status.stderr
    st = json.loads(status.stdout)
    assert st["marrow"]["blood_based"]["cumulative_gy"] == 0.42
    assert st["cycles"][0]["marrow"]["image_based"]["dose_gy"] == 0.31
    assert st["cycles"][0]["haematology"]["platelets_1e9_l"] == 210.0
    text = trial("status", "--patient", "SN-M1")
    assert "cumulative marrow dose (blood-based) 0.420 Gy" in text.stdout
    history = json.loads(trial("history", "--patient", "SN-M1", "--json").stdout)
    assert history["marrow"]["image_based"]["cumulative_gy"] == 0.31
