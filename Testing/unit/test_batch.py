"""``startnet batch`` pieces that need no cluster: manifest checks, fingerprint, summary, outliers, trial record."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from startnet.batch.cohort import outlier_mask, write_cohort
from startnet.batch.fingerprint import row_fingerprint, stored_fingerprint, write_fingerprint
from startnet.batch.manifest import ManifestError, read_rows
from startnet.batch.summary import SUMMARY_COLUMNS, summary_lines
from startnet.batch.task import RowOutcome
from startnet.cli import build_parser
from startnet.cycle.options import option_values
from startnet.errors import TrialRuleError


def batch_parser():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return subparsers.choices["batch"]


def defaults(*argv):
    return option_values(batch_parser().parse_args(["x", "--out", "o", *argv]))


def write_dicom(path: Path, size: int = 16, sop_uid: str = "") -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientComments = "x" * size
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(ds, "save_as") and "enforce_file_format" in ds.save_as.__code__.co_varnames:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.4 (Slicer 5.8)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)


def test_every_bad_row_is_reported_before_any_work(tmp_path):
    (tmp_path / "c1").mkdir()
    (tmp_path / "c2").mkdir()
    manifest = tmp_path / "m.csv"
    manifest.write_text("input_dir,name,method,dose_scale\n"
                        "c1,p1,vsv,1\n"
                        "missing_folder,p2,,\n"
                        "c2,p1,,\n"
                        "c2,p4,monte-carlo,\n")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "startnet", "batch", str(manifest), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4, result.stderr
    assert "m.csv line 1: unknown column 'dose_scale'" in errors[0]
    assert "m.csv line 3: input_dir 'missing_folder': no such folder" in result.stderr
    assert "m.csv line 4: duplicate name 'p1' (also m.csv line 2)" in result.stderr
    assert "m.csv line 5: column method: --method 'monte-carlo': expected one of" in result.stderr
    assert not out.exists()  # nothing started


def test_rows_resolve_paths_and_override_the_command_line(tmp_path):
    (tmp_path / "data" / "c1").mkdir(parents=True)
    (tmp_path / "data" / "c2").mkdir()
    (tmp_path / "data" / "seg.nrrd").write_bytes(b"x")
    manifest = tmp_path / "data" / "m.csv"
    manifest.write_text("input_dir,segmentation,method,patient_id,cycle,count_rate_kcps\n"
                        "c1,seg.nrrd,vsv,SN-001,2,\"40,35\"\n"
                        "c2,,,,,\n")
    rows = read_rows(str(manifest), defaults("--method", "led", "--pvc", "none"), batch_parser())
    assert [r.name for r in rows] == ["c1", "c2"]
    first, second = rows
    assert first.input_dir == str((tmp_path / "data" / "c1").resolve())
    assert first.values["segmentation"] == str((tmp_path / "data" / "seg.nrrd").resolve())
    assert (first.values["method"], first.values["patient_id"], first.values["cycle"]) == ("vsv", "SN-001", 2)
    assert first.values["count_rate_kcps"] == (40.0, 35.0)
    assert second.values["method"] == "led" and second.values["pvc"] == "none" and second.values["segmentation"] is None


def test_trial_db_needs_patient_and_cycle_per_row_and_one_row_per_cycle(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    manifest = tmp_path / "m.csv"
    manifest.write_text("input_dir,patient_id,cycle\na,SN-1,1\nb,SN-1,1\nc,,\n")
    with pytest.raises(ManifestError) as caught:
        read_rows(str(manifest), defaults("--trial-db", "sqlite:///x.db"), batch_parser())
    problems = caught.value.problems
    assert any("line 3: patient SN-1 cycle 1 is also m.csv line 2" in p for p in problems)
    assert any("line 4: --trial-db needs --patient ID and --cycle N" in p for p in problems)


def test_folder_mode_takes_sub_folders_holding_dicom(tmp_path):
    write_dicom(tmp_path / "patient2" / "tp1" / "IM1")
    write_dicom(tmp_path / "patient1" / "IM1")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no DICOM here")
    rows = read_rows(str(tmp_path), defaults(), batch_parser())
    assert [r.name for r in rows] == ["patient1", "patient2"]


def test_fingerprint_follows_inputs_and_parameters_not_the_database(tmp_path):
    write_dicom(tmp_path / "in" / "IM1", sop_uid="1.2.3.4")
    values = {"method": "vsv", "pvc": "gtm", "trial_db": None}
    first = row_fingerprint(str(tmp_path / "in"), values)["fingerprint"]
    assert row_fingerprint(str(tmp_path / "in"), dict(values, trial_db="sqlite:///t.db"))["fingerprint"] == first
    assert row_fingerprint(str(tmp_path / "in"), dict(values, pvc="none"))["fingerprint"] != first
    write_dicom(tmp_path / "in" / "IM1", sop_uid="1.2.3.5")  # same size, another instance
    assert row_fingerprint(str(tmp_path / "in"), values)["fingerprint"] != first
    write_fingerprint(tmp_path, row_fingerprint(str(tmp_path / "in"), values))
    assert stored_fingerprint(tmp_path) == row_fingerprint(str(tmp_path / "in"), values)["fingerprint"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_outlier_rule_three_scaled_mads():
    values = [1.00, 1.10, 0.90, 1.05, 0.95, 1.02, 3.00]
    # median 1.02, MAD 0.05: limit 3 x 1.4826 x 0.05 = 0.222 from the median
    assert outlier_mask(values).tolist() == [False] * 6 + [True]
    assert outlier_mask([1.0, 1.0, 1.0, 1.0, 9.0]).tolist() == [False] * 5  # MAD = 0: no scale, no flags
    assert not outlier_mask([1.0, 1.1, 5.0]).any()  # too few cycles to call anything an outlier


def outcome(name, status="done", kidney_gy=4.0, activity_mbq=7400.0, cycle=1, site="Uppsala", error=""):
    structures = {} if status == "failed" else {
        "kidney_left": {"mean_gy": kidney_gy, "uncertainty_gy": 0.4, "tia_mbq_h": 6000.0,
                        "effective_half_life_h": 50.0, "bed_gy": kidney_gy * 1.1}}
    record = {} if status == "failed" else {"patient_id": name.upper(), "cycle": cycle,
                                            "injected_activity_mbq": activity_mbq, "kidneys_mean_gy": kidney_gy,
                                            "site": site, "structures": structures}
    return RowOutcome(name, status, error=error, record=record)


def test_summary_lines_and_cohort_page(tmp_path):
    outcomes = [outcome("a", kidney_gy=3.7), outcome("b", status="failed", error="c: no DICOM files found")]
    lines = summary_lines(outcomes)
    assert all(set(line) == set(SUMMARY_COLUMNS) for line in lines)
    assert lines[0]["structure"] == "kidney_left" and float(lines[0]["gy_per_gbq"]) == pytest.approx(0.5)
    assert lines[1]["status"] == "failed" and lines[1]["error"] == "c: no DICOM files found"
    assert lines[1]["structure"] == ""
    cohort = [outcome(f"p{i}", kidney_gy=g, cycle=1 + i % 2, site=("Lund", "Umeå")[i % 2])
              for i, g in enumerate([3.6, 3.7, 3.8, 3.7, 3.75, 9.0])]
    page = write_cohort(str(tmp_path), cohort).read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "<td>p5</td><td>kidneys Gy/GBq</td><td>1.216</td>" in page  # 9.0 Gy / 7.4 GBq, flagged


def test_trial_record_is_idempotent(tmp_path):
    from startnet.batch.trial import record_results
    from startnet.trial.store import TrialStore

    url = f"sqlite:///{tmp_path / 'trial.db'}"
    store = TrialStore.initialise(url)
    store.enroll("SN-001", "Uppsala", 3, dt.date(2025, 1, 2))
    store.close()
    results = {"structures": {"kidney_left": {"mean_gy": 4.2, "mass_g": 150.0},
                              "kidney_right": {"mean_gy": 3.8, "mass_g": 150.0}},
               "kidneys_mean_gy": 4.0, "kidneys_uncertainty_pct": 12.0, "kidneys_bed_gy": 4.4,
               "injected_activity_mbq": 7400.0, "injection_datetime": "2025-02-03T09:00:00+01:00",
               "patient_id": "SN-001", "cycle": 1}
    assert record_results(url, "SN-001", 1, results, "r.json") == "recorded"
    assert record_results(url, "SN-001", 1, results, "r.json") == "already recorded"
    changed = dict(results, kidneys_mean_gy=4.5)
    with pytest.raises(TrialRuleError, match=r"cycle 1 is already recorded with a different result \(kidney_gy 4.0 "
                                             r"recorded, 4.5 now\)"):
        record_results(url, "SN-001", 1, changed, "r.json")
    assert np.isclose(TrialStore.open(url).cycles("SN-001")[0]["kidney_gy"], 4.0)


def test_every_module_the_forkserver_preloads_imports():
    """The forkserver skips a name that fails to import without a word (its workers would then import what
    they need during their first row): every name in the list must import."""
    code = ("import importlib, sys\nfrom startnet.batch.cluster import WORKER_MODULES\nfailed = []\n"
            "for name in WORKER_MODULES:\n    try:\n        importlib.import_module(name)\n"
            "    except ImportError as exc:\n        failed.append(f'{name}: {exc}')\nprint(failed)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
