"""``startnet run`` end to end on the phantom's DICOM: outputs, results.json contract, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

STRUCTURE_KEYS = ("volume_ml", "mass_g", "tia_mbq_h", "mean_gy", "d2_gy", "d98_gy", "bed_gy", "uncertainty_pct",
                  "fit_model", "effective_half_life_h")


def startnet(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "startnet", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def phantom_cycle(tmp_path_factory):
    phantom = build_phantom(PhantomConfig(preset="small", seed=41))
    files = write_phantom_dicom(phantom, tmp_path_factory.mktemp("cycle"))
    return phantom, files


@pytest.fixture(scope="module")
def run_output(phantom_cycle, tmp_path_factory):
    phantom, files = phantom_cycle
    out = tmp_path_factory.mktemp("run") / "out"
    result = startnet("run", files.dicom_dir, "--out", out, "--segmentation", files.segmentation_nrrd,
                      "--reference-timepoint", phantom.reference_index, "--quiet")
    assert result.returncode == 0, result.stderr
    return out, result, json.loads(Path(files.truth_json).read_text())


def test_run_writes_every_output(run_output):
    out, result, _ = run_output
    for name in ("results.json", "dose.nrrd", "tia.nrrd", "rtdose.dcm", "seg.dcm", "scene.mrb", "report.html",
                 "report.pdf"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not [p for p in out.iterdir() if p.name.startswith(".startnet-staging")]
    assert "kidneys (mass-weighted)" in result.stdout


def test_results_json_contract(run_output, phantom_cycle):
    out, _, truth = run_output
    results = json.loads((out / "results.json").read_text())
    phantom, _ = phantom_cycle
    assert results["injected_activity_mbq"] == pytest.approx(phantom.config.injected_activity_mbq, rel=1e-6)
    hours = [tp["hours_post_injection"] for tp in results["timepoints"]]
    assert hours == pytest.approx([tp.hours_post_injection for tp in phantom.timepoints], abs=1e-3)
    assert all(tp["series_instance_uid"] for tp in results["timepoints"])
    assert results["radiopharmaceutical"] == "Lu177-DOTATOC"  # as the phantom's DICOM names it
    for name in ("kidney_left", "kidney_right", "liver", "spleen", "tumour_1"):
        for key in STRUCTURE_KEYS:
            assert key in results["structures"][name], (name, key)
    kidneys = results["structures"]
    masses = [kidneys[k]["mass_g"] for k in ("kidney_left", "kidney_right")]
    expected = sum(kidneys[k]["mean_gy"] * m for k, m in zip(("kidney_left", "kidney_right"), masses)) / sum(masses)
    assert results["kidneys_mean_gy"] == pytest.approx(expected, rel=1e-3)
    truth_mass = {k: truth["structures"][k]["mass_g"] for k in ("kidney_left", "kidney_right")}
    truth_kidneys = sum(truth["structures"][k]["mean_dose_gy"] * m for k, m in truth_mass.items()) / sum(
        truth_mass.values())
    # noisy, blurred, moving phantom at 7 mm SPECT voxels: within the reported standard uncertainty,
    # and within 5 % of the truth (partial-volume correction by GTM with enlarged VOIs)
    deviation = abs(results["kidneys_mean_gy"] - truth_kidneys)
    assert deviation <= results["kidneys_uncertainty_pct"] / 100.0 * results["kidneys_mean_gy"]
    assert deviation <= 0.05 * truth_kidneys
    for kidney in ("kidney_left", "kidney_right"):
        measured, expected = kidneys[kidney]["mean_gy"], truth["structures"][kidney]["mean_dose_gy"]
        assert abs(measured - expected) <= kidneys[kidney]["uncertainty_gy"], kidney
    assert results["provenance"]["software_version"]
    assert results["provenance"]["dose"]["kernel"]


def test_rtdose_and_dose_map_agree(run_output):
    out, _, _ = run_output
    ds = pydicom.dcmread(out / "rtdose.dcm")
    assert ds.Modality == "RTDOSE" and ds.DoseUnits == "GY"
    dose = sitk.ReadImage(str(out / "dose.nrrd"))
    rt = ds.pixel_array.astype(float) * float(ds.DoseGridScaling)
    assert rt.max() == pytest.approx(sitk.GetArrayViewFromImage(dose).max(), rel=1e-3)
    assert ds.FrameOfReferenceUID


def test_exported_maps_agree_with_the_reported_means(run_output, phantom_cycle):
    """Issue 10 finding 6: dose.nrrd over each structure vs its reported mean_gy.

    Map mean = sum_v f(v) m(v) D(v) / sum_v f(v) m(v), f the structure's share of SPECT voxel v (the
    fractions its mass is counted with), m the voxel mass (density of the CT on the dose grid).
    Allowed difference: the electron energy the 7 mm kernel carries out of a voxel (5.0 %, recorded in
    the provenance). Before the fix the voxel TIA was scaled over binary masks: kidneys -6 %, tumour_4
    -22 %.
    """
    from startnet.cycle.structure_maps import share_weighted_mean
    from startnet.dosimetry.density import hu_to_density_g_per_ml
    from startnet.segmentation import load_segmentation

    out, _, _ = run_output
    _, files = phantom_cycle
    results = json.loads((out / "results.json").read_text())
    spill = results["provenance"]["dose"]["kernel_electron_spill_pct"] / 100.0
    assert 0.04 < spill < 0.06
    dose_image = sitk.ReadImage(str(out / "dose.nrrd"))
    dose = sitk.GetArrayFromImage(dose_image)
    density = hu_to_density_g_per_ml(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "ct_on_dose_grid.nrrd"))))
    fractions = load_segmentation(files.segmentation_nrrd, dose_image, fractional=True).fractions
    checked = [n for n in results["structures"] if n.startswith(("kidney", "tumour"))]
    assert len(checked) >= 4
    for name in checked:
        reported = results["structures"][name]["mean_gy"]
        map_mean = share_weighted_mean(dose, fractions[name], density)
        assert abs(map_mean / reported - 1.0) <= spill, (name, map_mean, reported)
    rt = pydicom.dcmread(out / "rtdose.dcm")
    rt_dose = rt.pixel_array.astype(float) * float(rt.DoseGridScaling)
    assert np.allclose(rt_dose, dose, atol=2e-6 * float(dose.max()) + 1e-6)


def test_scene_bundle_holds_the_cycle(run_output):
    out, _, _ = run_output
    with zipfile.ZipFile(out / "scene.mrb") as bundle:
        names = bundle.namelist()
    assert any(n.endswith(".mrml") for n in names)
    assert sum(n.endswith(".nrrd") and not n.endswith(".seg.nrrd") for n in names) >= 6  # CT, 4 SPECT, dose...
    assert any(n.endswith(".seg.nrrd") for n in names)


def test_empty_folder_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = startnet("run", empty, "--out", tmp_path / "out", "--quiet")
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_non_dicom_folder_is_a_clear_error(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not DICOM")
    result = startnet("run", folder, "--out", tmp_path / "out", "--quiet")
    assert result.returncode != 0 and result.stderr.startswith("error: ")


def test_unknown_label_and_missing_labels_file(phantom_cycle, tmp_path):
    phantom, files = phantom_cycle
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"1": "kidney_left", "x": "liver"}))
    result = startnet("run", files.dicom_dir, "--out", tmp_path / "out", "--segmentation", files.labels_nifti,
                      "--labels", labels, "--quiet")
    assert result.returncode != 0 and "label key 'x'" in result.stderr
    result = startnet("run", files.dicom_dir, "--out", tmp_path / "out", "--segmentation", files.labels_nifti,
                      "--labels", tmp_path / "missing.json", "--quiet")
    assert result.returncode != 0 and "not found" in result.stderr


def test_segmentation_outside_the_images_is_refused(phantom_cycle, tmp_path):
    _, files = phantom_cycle
    labels = sitk.ReadImage(str(files.labels_nifti))
    labels.SetOrigin(tuple(o + 5000.0 for o in labels.GetOrigin()))
    far = tmp_path / "far.nii.gz"
    sitk.WriteImage(labels, str(far))
    result = startnet("run", files.dicom_dir, "--out", tmp_path / "out", "--segmentation", far,
                      "--labels", files.labels_json, "--quiet")
    assert result.returncode != 0 and result.stderr.startswith("error: ")
    assert not (tmp_path / "out" / "results.json").exists()


def test_unwritable_output_folder(phantom_cycle, tmp_path):
    _, files = phantom_cycle
    # /proc refuses new folders even for root, so this holds in CI (which runs as root) too
    result = startnet("run", files.dicom_dir, "--out", "/proc/startnet-results", "--quiet")
    assert result.returncode != 0 and "cannot write" in result.stderr


def test_output_path_that_is_a_file(phantom_cycle, tmp_path):
    _, files = phantom_cycle
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    result = startnet("run", files.dicom_dir, "--out", blocker, "--quiet")
    assert result.returncode != 0 and "is not a folder" in result.stderr


def test_single_time_point_falls_back_and_says_so(tmp_path):
    phantom = build_phantom(PhantomConfig(preset="small", seed=43, timepoints_h=(96.0,)))
    files = write_phantom_dicom(phantom, tmp_path / "one")
    out = tmp_path / "out"
    result = startnet("run", files.dicom_dir, "--out", out, "--segmentation", files.segmentation_nrrd, "--quiet")
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["structures"]["kidney_left"]["fit_model"] in ("haenscheid", "madsen")
    assert any("one time point" in w for w in results["warnings"])


def test_its_own_dicom_seg_can_drive_the_next_run(run_output, phantom_cycle, tmp_path):
    out, _, truth = run_output
    _, files = phantom_cycle
    again = tmp_path / "again"
    result = startnet("run", files.dicom_dir, "--out", again, "--segmentation", out / "seg.dcm", "--quiet")
    assert result.returncode == 0, result.stderr
    results = json.loads((again / "results.json").read_text())
    assert not any("overlap" in w for w in results["warnings"])  # the exported segments share no voxel
    truth_mass = {k: truth["structures"][k]["mass_g"] for k in ("kidney_left", "kidney_right")}
    truth_kidneys = sum(truth["structures"][k]["mean_dose_gy"] * m for k, m in truth_mass.items()) / sum(
        truth_mass.values())
    assert abs(results["kidneys_mean_gy"] / truth_kidneys - 1.0) <= 0.05
