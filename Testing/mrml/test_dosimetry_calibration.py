"""The Dosimetry module picks the calibration file per camera (slicer-core, phantom DICOM).

A cycle scanned on a camera with PSF 15 mm and 8 cps/MBq is loaded into the scene as Time-point
Registration does, with the CF the user typed there (5.5 cps/MBq, the old default); the camera's
calibration is made with the Camera Calibration panel logic into a calibration folder that also
holds another camera's file. The job the Dosimetry module writes with that folder
(``RunOptions.calibration_path``, :func:`startnet.mrml.dosimetry_job.check_job_calibration`, then
:func:`startnet.cycle.job.run_job`) applies the camera's file: provenance names it (path, sha256,
camera), count images are rescaled to the calibrated sensitivity, the calibrated PSF is used, and the
kidney doses are within 5 % of truth; the same job without the folder reads them ~1.5 x truth.
A folder without this camera's file is refused before the job is written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import SimpleITK as sitk

from startnet.cycle.job import run_job, write_job
from startnet.cycle.run import RunOptions
from startnet.errors import InputError
from startnet.mrml import cycle_state as state
from startnet.mrml.calibration_logic import CalibrationSceneLogic
from startnet.mrml.cycle_logic import CycleSceneLogic
from startnet.mrml.dosimetry_job import check_job_calibration, job_inputs_from_scene
from startnet.mrml.scene import new_scene
from startnet.mrml.scene_dosimetry import dosimetry_from_scene
from startnet.mrml.segmentations import masks_to_segmentation
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom
from startnet.phantom.calibration_dicom import write_calibration_scan
from startnet.phantom.calibration_scans import CalibrationScanConfig, CameraSpec, build_calibration_scan
from startnet.phantom.config import GridSpec

CAMERA = CameraSpec(psf_fwhm_mm=15.0, sensitivity_cps_per_mbq=8.0)  # identity of the patient phantom's camera
GRID = GridSpec((64, 64, 64), (7.0, 7.0, 7.0))
CF_TYPED_AT_LOAD = 5.5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dosecal")
    phantom = build_phantom(PhantomConfig(preset="small", seed=7, units="counts", psf_fwhm_mm=15.0,
                                          calibration_cps_per_mbq=8.0))
    files = write_phantom_dicom(phantom, root / "patient")
    folder = root / "calibrations"
    cal = folder / "CAL_phantom.json"
    panel = CalibrationSceneLogic(new_scene())
    for kind, seed in (("cylinder", 1), ("spheres", 2)):
        config = CalibrationScanConfig(kind=kind, camera=CAMERA, grid=GRID, seed=seed)
        scan = write_calibration_scan(build_calibration_scan(config), root / kind)
        if kind == "cylinder":
            panel.sensitivity(str(scan.dicom_dir), config.cylinder_activity_mbq, config.activity_datetime.isoformat(),
                              cal)
        else:
            from startnet.calibration.spheres import read_spheres
            from startnet.dicomio.timing import get_zone

            panel.recovery(str(scan.dicom_dir), read_spheres(scan.spheres_json, get_zone("Europe/Stockholm")), cal)
    data = json.loads(cal.read_text())
    other = dict(data, camera=dict(data["camera"], serial="OTHER-9"), sensitivity_cps_per_mbq=3.0)
    (folder / "CAL_other.json").write_text(json.dumps(other))
    scene = new_scene()
    cycle = CycleSceneLogic(scene)
    cycle.load_cycle(str(files.dicom_dir), calibration_cps_per_mbq=CF_TYPED_AT_LOAD)
    cycle.register()
    labels = sitk.GetArrayFromImage(phantom.labels)
    segmentation = masks_to_segmentation(scene, {name: labels == value for value, name in phantom.label_names.items()},
                                         phantom.labels, "Structures")
    state.set_segmentation_node(cycle.cycle_node, segmentation)
    truth = json.loads(Path(files.truth_json).read_text())["structures"]
    return {"scene": scene, "folder": folder, "cal": cal, "truth": truth, "root": root}


def _job(setup, name, calibration_path=None):
    """What DosimetryLogic.writeJob and the background job do, in this process."""
    out, job = setup["root"] / name, setup["root"] / f"{name}_job"
    options = RunOptions(input_dir="", out_dir=str(out), write_scene=False, write_report=False,
                         calibration_path=str(calibration_path) if calibration_path else None)
    inputs = job_inputs_from_scene(setup["scene"], options)
    check_job_calibration(inputs)
    write_job(job, inputs)
    events = []
    run_job(job, events.append)
    return json.loads((out / "results.json").read_text())


def _kidney_ratios(results, truth):
    return {k: results["structures"][k]["mean_gy"] / truth[k]["mean_dose_gy"] for k in ("kidney_left", "kidney_right")}


def test_job_with_a_calibration_folder_applies_the_cameras_file(setup):
    calibrated = _job(setup, "calibrated", setup["folder"])
    cal = setup["cal"]
    used = calibrated["provenance"]["parameters"]["calibration"]
    assert used["file"] == str(cal.resolve())
    assert used["sha256"] == hashlib.sha256(cal.read_bytes()).hexdigest()
    assert used["camera"] == {"manufacturer": "START-NET", "model": "Digital Phantom SPECT/CT", "serial": "PH-0001"}
    data = json.loads(cal.read_text())
    assert calibrated["provenance"]["parameters"]["psf_fwhm_mm"] == pytest.approx(data["psf_fwhm_mm"])
    for timepoint in calibrated["timepoints"]:
        conversion = timepoint["conversion"]
        assert conversion["calibration_cps_per_mbq"] == pytest.approx(data["sensitivity_cps_per_mbq"])
        assert conversion["calibration_cps_per_mbq_at_load"] == pytest.approx(CF_TYPED_AT_LOAD)
        assert conversion["calibration_file"] == str(cal.resolve())
    assert sum("rescaled to the calibrated sensitivity" in w for w in calibrated["warnings"]) == 4
    budget = {c["component"]: c["relative_pct"] for c in calibrated["structures"]["kidney_left"]["uncertainty_budget"]}
    assert budget["calibration factor (correlated over time points)"] == pytest.approx(
        100 * data["sensitivity_rel_sd"], abs=0.01)
    plain = _job(setup, "plain")
    assert plain["provenance"]["parameters"]["calibration"] is None
    with_cal, without = _kidney_ratios(calibrated, setup["truth"]), _kidney_ratios(plain, setup["truth"])
    print("kidney dose / truth: without calibration", {k: round(v, 3) for k, v in without.items()},
          "with the calibration folder", {k: round(v, 3) for k, v in with_cal.items()})
    for kidney in with_cal:
        assert with_cal[kidney] == pytest.approx(1.0, abs=0.05)
        assert without[kidney] > 1.3


def test_dose_from_the_scene_in_process_applies_it_too(setup):
    options = RunOptions(input_dir="", out_dir=str(setup["root"] / "in_process"), write_scene=False,
                         write_report=False, calibration_path=str(setup["cal"]))
    result = dosimetry_from_scene(setup["scene"], options, write=False)
    assert result.results["provenance"]["parameters"]["calibration"]["file"] == str(setup["cal"].resolve())
    for kidney, ratio in _kidney_ratios(result.results, setup["truth"]).items():
        assert ratio == pytest.approx(1.0, abs=0.05), kidney


def test_a_folder_without_this_cameras_file_is_refused_before_the_job(setup, tmp_path):
    (tmp_path / "CAL_other.json").write_bytes((setup["folder"] / "CAL_other.json").read_bytes())
    options = RunOptions(input_dir="", out_dir=str(tmp_path / "out"), write_scene=False, write_report=False,
                         calibration_path=str(tmp_path))
    inputs = job_inputs_from_scene(setup["scene"], options)
    with pytest.raises(InputError, match="no calibration for the SPECT's camera .*PH-0001.*OTHER-9") as error:
        check_job_calibration(inputs)
    assert "\n" not in str(error.value)
    # without DICOM files behind the time points the camera is unknown: refused, not guessed
    inputs.cycle.timepoints[0].spect_file = ""
    with pytest.raises(InputError, match="SPECT DICOM file is not recorded"):
        check_job_calibration(inputs)
