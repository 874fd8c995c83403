"""Acceptance (issue 14): a three-cycle phantom patient run cycle by cycle into a trial database.

Phantom: ``PhantomConfig(preset="small", cycle_number=1..3)``: tumour_1 (65 -> 44 -> 29 mL) and
tumour_2/tumour_3 shrink, the lymph node (tumour_4) is gone after cycle 1, a new liver lesion
(anatomical tumour_5, 20.5 -> 17 mL) appears in cycle 2 under the name the lymph node had
("tumour_4"), and the patient lies differently on the table in every cycle. Each cycle is run with
``run_cycle(--trial-db)``; the lesion register matches its tumour segments through the CT-to-CT
registration to the cycles recorded before. Checked: every anatomical lesion keeps one ID and
every ID one lesion, the new and the vanished lesions are reported as such, the per-lesion
cumulative dose (trial tracker and ``startnet accumulate``) is within 10 % of the phantom's truth
for lesions >= 15 mL, and ``accumulate`` no longer sums two different lesions under one name.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from startnet.cycle.run import RunOptions, run_cycle
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom
from startnet.phantom.truth import lesion_truth_across_cycles
from startnet.trial.store import TrialStore
from startnet.trial.summary import status

PATIENT = "SN-014"
LARGE_ML = 15.0


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    root = tmp_path_factory.mktemp("lesion-cycles")
    db = str(root / "trial.db")
    store = TrialStore.initialise(db)
    store.enroll(PATIENT, "Sahlgrenska", 1, dt.date(2025, 5, 1))
    store.close()
    truths, results, folders = [], [], []
    for number in (1, 2, 3):
        phantom = build_phantom(PhantomConfig(preset="small", seed=14, cycle_number=number))
        files = write_phantom_dicom(phantom, root / f"phantom{number}")
        truths.append(phantom.truth)
        out = root / f"cycle{number}"
        result = run_cycle(RunOptions(input_dir=str(files.dicom_dir), out_dir=str(out),
                                      segmentation_path=str(files.segmentation_nrrd), trial_db=db,
                                      patient_id=PATIENT, cycle=number, write_scene=False, write_report=False))
        results.append(result.results)
        folders.append(out)
    store = TrialStore.open(db)
    try:
        tracker = status(store, PATIENT)
    finally:
        store.close()
    return {"db": db, "root": root, "truths": truths, "results": results, "folders": folders, "status": tracker}


def _identity(patient):
    """lesion ID -> the anatomical lesions it was given to (one each, if identity is kept)."""
    ids = {}
    for truth, result in zip(patient["truths"], patient["results"]):
        for segment, lesion_id in result["lesions"]["segments"].items():
            ids.setdefault(lesion_id, set()).add(truth["cycle"]["lesion_of_segment"][segment])
    return ids


def test_every_lesion_keeps_its_identity_new_and_vanished_reported(patient):
    ids = _identity(patient)
    assert all(len(anatomical) == 1 for anatomical in ids.values()), ids
    by_lesion = {next(iter(a)): i for i, a in ids.items()}
    assert sorted(by_lesion) == ["tumour_1", "tumour_2", "tumour_3", "tumour_4", "tumour_5"]
    one, two, three = (r["lesions"] for r in patient["results"])
    assert sorted(one["new"]) == sorted(one["segments"].values())  # the first cycle: all new
    # cycle 2: the segment called "tumour_4" is the new liver lesion, not the lymph node of cycle 1
    assert two["segments"]["tumour_4"] == by_lesion["tumour_5"] != one["segments"]["tumour_4"]
    assert two["new"] == [by_lesion["tumour_5"]] and two["not_seen"] == [by_lesion["tumour_4"]]
    assert three["new"] == [] and three["not_seen"] == [by_lesion["tumour_4"]]
    matched = [m for m in two["matches"] if m["how"] == "matched"]
    assert len(matched) == 3 and all(m["compared_with_cycle"] == 1 for m in matched)
    assert all(r["translation_mm"] != [0.0, 0.0, 0.0] for r in two["registrations"])
    tracker = {row["id"]: row for row in patient["status"]["lesions"]}
    assert tracker[by_lesion["tumour_4"]]["status"] == "not seen"
    assert tracker[by_lesion["tumour_4"]]["not_seen_in"] == [2, 3]
    assert tracker[by_lesion["tumour_5"]]["first_cycle"] == 2


def test_cumulative_lesion_dose_within_10_percent_of_truth(patient):
    truth = lesion_truth_across_cycles(patient["truths"])
    ids = {next(iter(a)): i for i, a in _identity(patient).items()}
    tracker = {row["id"]: row for row in patient["status"]["lesions"]}
    large = [name for name, t in truth.items()
             if t["present_in"] and min(v for v in t["volume_ml"] if v > 0) >= LARGE_ML]
    assert large == ["tumour_1", "tumour_5"]
    for name in large:
        measured = tracker[ids[name]]["cumulative_mean_gy"]
        expected = truth[name]["cumulative_mean_dose_gy"]
        print(f"{name} ({ids[name]}): cumulative {measured:.2f} Gy vs truth {expected:.2f} Gy "
              f"({100 * (measured / expected - 1):+.1f} %)")
        assert measured == pytest.approx(expected, rel=0.10)
        assert len(tracker[ids[name]]["per_cycle"]) == len(truth[name]["present_in"])


def test_accumulate_gives_the_same_lesions_and_no_sum_across_two_lesions_by_name(patient, tmp_path):
    out = tmp_path / "total"
    proc = subprocess.run([sys.executable, "-m", "startnet", "accumulate", *map(str, patient["folders"]),
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    cumulative = json.loads((out / "cumulative.json").read_text())
    register = cumulative["lesions"]
    for result, entry in zip(patient["results"], register["cycles"]):
        assert entry["segments"] == result["lesions"]["segments"]  # the IDs recorded in the trial database
    tracker = {row["id"]: row["cumulative_mean_gy"] for row in patient["status"]["lesions"]}
    assert {row["id"]: row["cumulative_mean_gy"] for row in register["lesions"]} == pytest.approx(tracker)
    # "tumour_4" is the lymph node in cycle 1 and the new liver lesion later: never summed as one structure
    assert "tumour_4" not in cumulative["structures"] and "kidney_left" in cumulative["structures"]
    assert (out / "lesions.csv").read_text().startswith("lesion,cycle,segment,status")
    assert "lesion L" in proc.stdout


def test_accumulation_in_the_scene_shows_the_lesion_table(patient, tmp_path):
    pytest.importorskip("slicer")
    from startnet.mrml.accumulation import accumulate_and_show
    from startnet.mrml.scene import new_scene
    from startnet.mrml.tables import records_from_table

    shown = accumulate_and_show(new_scene(), [str(f) for f in patient["folders"]], str(tmp_path / "sum"))
    rows = records_from_table(shown["lesion_table"])
    tracker = {row["id"]: row["cumulative_mean_gy"] for row in patient["status"]["lesions"]}
    last = {r["lesion"]: r for r in rows if int(r["cycle"]) == 3}
    assert {k: r["cumulative_mean_gy"] for k, r in last.items()} == pytest.approx(tracker, abs=1e-3)
    assert sorted(r["status"] for r in last.values()).count("not seen") == 1
