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
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from startnet.cycle.run import RunOptions, run_cycle
from startnet.cycle.trial_record import record_cycle_results
from startnet.errors import InputError
from startnet.lesions.update import lesions_for_run
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
    truths, results, folders, inputs = [], [], [], []
    for number in (1, 2, 3):
        phantom = build_phantom(PhantomConfig(preset="small", seed=14, cycle_number=number))
        files = write_phantom_dicom(phantom, root / f"phantom{number}")
        truths.append(phantom.truth)
        inputs.append((str(files.dicom_dir), str(files.segmentation_nrrd)))
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
    return {"db": db, "root": root, "truths": truths, "results": results, "folders": folders, "status": tracker,
            "inputs": inputs}


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


def test_moved_run_folders_are_found_by_their_results_not_their_paths(patient, tmp_path):
    """Cycles 1-2 recorded at a site's paths, their folders moved (renamed) before cycle 3 is run elsewhere."""
    db = str(tmp_path / "trial.db")
    store = TrialStore.initialise(db)
    store.enroll(PATIENT, "Sahlgrenska", 1, dt.date(2025, 5, 1))
    store.close()
    core = tmp_path / "core-lab"
    for number, (folder, result) in enumerate(zip(patient["folders"][:2], patient["results"][:2]), start=1):
        # what 'startnet run --trial-db' records, with the site's path; the folder is then moved to the core lab
        injected = dt.datetime.fromisoformat(result["injection_datetime"]).date()
        record_cycle_results(db, PATIENT, number, injected, result["injected_activity_mbq"] / 1000.0, result,
                             results_path=str(tmp_path / "site" / f"cycle{number}" / "results.json"))
        shutil.copytree(folder, core / f"archived-{number}")  # another name: found by results.json, not by name
    dicom_dir, segmentation = patient["inputs"][2]
    options = RunOptions(input_dir=dicom_dir, out_dir=str(core / "cycle3"), segmentation_path=segmentation,
                         trial_db=db, patient_id=PATIENT, cycle=3, write_scene=False, write_report=False)
    result = run_cycle(options)
    unmoved = patient["results"][2]["lesions"]
    assert result.results["lesions"]["segments"] == unmoved["segments"]  # the IDs of the run never moved
    assert result.results["lesions"]["not_seen"] == unmoved["not_seen"] and result.results["lesions"]["new"] == []
    assert [c["cycle"] for c in result.results["lesions"]["compared_with"]] == [1, 2]
    moved = [w for w in result.results["warnings"] if "run folder moved: found in the folders beside" in w]
    assert len(moved) == 2 and not any("not compared" in w for w in result.results["warnings"])
    tracker = {row["id"]: row["cumulative_mean_gy"] for row in patient["status"]["lesions"]}
    assert {row["id"]: row["cumulative_mean_gy"] for row in result.trial_status["lesions"]} == pytest.approx(tracker)

    # --previous-runs DIR, searched recursively, decides before the sibling folders
    archive = tmp_path / "archive"
    for number in (1, 2):
        shutil.copytree(core / f"archived-{number}", archive / "2025" / PATIENT / f"c{number}")
    again = SimpleNamespace(**{**vars(options), "previous_runs_dir": str(archive)})
    record, warnings = lesions_for_run(again, result)
    assert record["segments"] == unmoved["segments"]
    assert [c["folder"] for c in record["compared_with"]] == [str(archive / "2025" / PATIENT / f"c{n}") for n in (1, 2)]

    # two copies of cycle 1 that both qualify: refused, naming both
    shutil.copytree(core / "archived-1", archive / "copy-of-c1")
    with pytest.raises(InputError, match=r"cycle 1 .*2 run folders in --previous-runs .*c1.*copy-of-c1"):
        lesions_for_run(again, result)

    # found nowhere: the cycles are left out with the warning, their IDs stay reserved
    elsewhere = SimpleNamespace(**{**vars(options), "out_dir": str(tmp_path / "elsewhere" / "cycle3")})
    record, warnings = lesions_for_run(elsewhere, result)
    assert record["compared_with"] == [] and len(warnings) == 2
    assert all("not compared" in w and "its lesions cannot be matched in this cycle" in w for w in warnings)
    earlier_ids = {i for r in patient["results"][:2] for i in r["lesions"]["segments"].values()}
    assert not set(record["segments"].values()) & earlier_ids
