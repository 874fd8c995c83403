"""``startnet run --segmentation RTSTRUCT.dcm`` on the small phantom: same kidney doses as its .seg.nrrd."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from rtstruct_factory import mask_contours, write_rtstruct  # noqa: E402

from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom  # noqa: E402

CLINIC_NAMES = {"kidney_left": "Kidney_L", "kidney_right": "Kidney_R", "tumour_1": "Lesion 1"}


def startnet(*args):
    return subprocess.run([sys.executable, "-m", "startnet", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def phantom_rtstruct(tmp_path_factory):
    phantom = build_phantom(PhantomConfig(preset="small", seed=41))
    files = write_phantom_dicom(phantom, tmp_path_factory.mktemp("cycle"))
    reference_ct = pydicom.dcmread(str(files.timepoints[phantom.reference_index].ct_files[0]),
                                   stop_before_pixels=True)
    labels = sitk.GetArrayFromImage(phantom.labels)
    rois = [(CLINIC_NAMES.get(name, name), mask_contours(labels == value, phantom.labels))
            for value, name in sorted(phantom.label_names.items()) if (labels == value).any()]
    folder = tmp_path_factory.mktemp("rt")
    path = write_rtstruct(str(folder / "rtstruct.dcm"), rois, series_uid=reference_ct.SeriesInstanceUID,
                          frame_of_reference_uid=reference_ct.FrameOfReferenceUID,
                          study_uid=reference_ct.StudyInstanceUID)
    foreign = write_rtstruct(str(folder / "foreign.dcm"), rois[:1], series_uid="1.2.826.0.1.3680043.99.1",
                             frame_of_reference_uid=reference_ct.FrameOfReferenceUID)
    return phantom, files, Path(path), Path(foreign)


def _run(phantom, files, segmentation, out):
    result = startnet("run", files.dicom_dir, "--out", out, "--segmentation", segmentation,
                      "--reference-timepoint", phantom.reference_index, "--quiet")
    assert result.returncode == 0, result.stderr
    return json.loads((out / "results.json").read_text())


def test_rtstruct_run_matches_the_seg_nrrd_run(phantom_rtstruct, tmp_path):
    phantom, files, rtstruct, _ = phantom_rtstruct
    from_rt = _run(phantom, files, rtstruct, tmp_path / "rt")
    from_seg = _run(phantom, files, files.segmentation_nrrd, tmp_path / "seg")
    assert {"kidney_left", "kidney_right", "lesion_1"} <= set(from_rt["structures"])
    for kidney in ("kidney_left", "kidney_right"):
        rt, seg = from_rt["structures"][kidney], from_seg["structures"][kidney]
        assert rt["volume_ml"] == pytest.approx(seg["volume_ml"], rel=0.02), kidney
        assert rt["mean_gy"] == pytest.approx(seg["mean_gy"], rel=0.03), kidney
    assert from_rt["kidneys_mean_gy"] == pytest.approx(from_seg["kidneys_mean_gy"], rel=0.03)
    assert from_rt["structures"]["lesion_1"]["mean_gy"] == pytest.approx(
        from_seg["structures"]["tumour_1"]["mean_gy"], rel=0.05)
    assert from_rt["provenance"]["structures_source"] == "file: rtstruct.dcm"
    assert isinstance(from_rt["provenance"]["segmentation_notes"], list)
    assert np.isfinite(from_rt["kidneys_mean_gy"])


def test_rtstruct_of_a_ct_not_in_the_cycle_is_one_clear_line(phantom_rtstruct, tmp_path):
    phantom, files, _, foreign = phantom_rtstruct
    result = startnet("run", files.dicom_dir, "--out", tmp_path / "out", "--segmentation", foreign,
                      "--reference-timepoint", phantom.reference_index, "--quiet")
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and "not in the cycle" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_run_with_blood_samples_writes_the_marrow_block(phantom_rtstruct, tmp_path):
    from startnet.phantom.blood import marrow_truth, write_blood_samples

    phantom, files, _, _ = phantom_rtstruct
    truth = marrow_truth(phantom)
    blood = write_blood_samples(phantom, tmp_path / "blood.csv")
    out = tmp_path / "out"
    result = startnet("run", files.dicom_dir, "--out", out, "--segmentation", files.segmentation_nrrd,
                      "--reference-timepoint", phantom.reference_index, "--blood-samples", blood,
                      "--patient-mass-kg", f"{truth['patient_mass_kg']:.3f}", "--quiet")
    assert result.returncode == 0, result.stderr
    marrow = json.loads((out / "results.json").read_text())["marrow"]
    assert marrow["dose_gy"] == pytest.approx(truth["dose_gy"], rel=0.10)
    assert marrow["red_marrow_to_blood_ratio"] == 1.0 and marrow["assumptions"]["cross_dose"]
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,activity_concentration_kbq_ml\nnot-a-time,3\n")
    result = startnet("run", files.dicom_dir, "--out", tmp_path / "out2", "--segmentation", files.segmentation_nrrd,
                      "--blood-samples", bad, "--quiet")
    assert result.returncode != 0 and "row 1: datetime 'not-a-time'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
