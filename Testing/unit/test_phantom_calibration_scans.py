"""The digital phantom's calibration acquisitions: counts, DICOM camera identity, truth and SPHERES.json."""

from __future__ import annotations

import json
import math

import pydicom
import pytest

from startnet.dicomio import Overrides, load_cycle
from startnet.phantom.calibration_dicom import write_calibration_scan
from startnet.phantom.calibration_scans import (
    CalibrationScanConfig,
    CameraSpec,
    build_calibration_scan,
    cylinder_fraction,
    sphere_fraction,
)
from startnet.phantom.config import GridSpec

GRID = GridSpec((64, 64, 64), (4.7952, 4.7952, 4.7952))
CAMERA = CameraSpec(manufacturer="Acme", model="Gamma 9", serial="SN-42", psf_fwhm_mm=14.0,
                    sensitivity_cps_per_mbq=7.5)


def test_partial_voxel_shares_give_the_exact_volumes():
    cylinder = cylinder_fraction(GRID, (1.0, -2.0, 0.5), 60.0, 100.0)
    assert cylinder.sum() * GRID.voxel_volume_ml == pytest.approx(math.pi * 60.0 ** 2 * 100.0 / 1000.0, rel=2e-3)
    sphere = sphere_fraction(GRID, (3.1, 2.2, -4.0), 5.0)
    assert sphere.sum() * GRID.voxel_volume_ml == pytest.approx(4 / 3 * math.pi * 125.0 / 1000.0, rel=0.01)


def test_cylinder_scan_counts_follow_sensitivity_and_decay(tmp_path):
    config = CalibrationScanConfig(kind="cylinder", camera=CAMERA, grid=GRID, noise=False, cylinder_radius_mm=60.0,
                                   cylinder_length_mm=100.0, cylinder_activity_mbq=200.0)
    scan = build_calibration_scan(config)
    truth = scan.truth
    # every count stays in the field of view: N = S A(t_start) (1 - exp(-lambda T)) / lambda
    assert scan.stored.sum() == pytest.approx(truth["activity_at_acquisition_mbq"] * scan.counts_per_mbq, rel=1e-3)
    assert truth["activity_at_acquisition_mbq"] == pytest.approx(200.0 * 2 ** (-2.0 / (6.647 * 24)), rel=1e-3)
    files = write_calibration_scan(scan, tmp_path / "cyl")
    ds = pydicom.dcmread(files.spect_file)
    assert (ds.Manufacturer, ds.ManufacturerModelName, ds.DeviceSerialNumber) == ("Acme", "Gamma 9", "SN-42")
    assert ds.DetectorInformationSequence[0].CollimatorGridName == "MELP"
    assert ds.ReconstructionMethod == "OSEM3D 4i8s" and ds.Units == "CNTS"
    # the loader with the true sensitivity reads the activity back (same unit rules as a patient scan)
    cycle = load_cycle(str(files.dicom_dir), Overrides(calibration_cps_per_mbq=7.5))
    assert cycle.timepoints[0].total_activity_mbq == pytest.approx(truth["activity_at_acquisition_mbq"], rel=2e-3)


def test_sphere_scan_truth_and_spheres_json(tmp_path):
    config = CalibrationScanConfig(kind="spheres", camera=CAMERA, grid=GRID, units="bqml", noise=True, seed=3,
                                   body_radius_mm=100.0, body_length_mm=150.0)
    scan = build_calibration_scan(config)
    files = write_calibration_scan(scan, tmp_path / "sph")
    spheres = json.loads(files.spheres_json.read_text())
    assert [s["name"] for s in spheres["spheres"]] == [f"sphere_{d}mm" for d in (10, 13, 17, 22, 28, 37)]
    assert spheres["sphere_concentration_kbq_ml"] == pytest.approx(8 * spheres["background_concentration_kbq_ml"])
    truth = json.loads(files.truth_json.read_text())
    rcs = [s["rc_cold"] for s in truth["spheres"]]
    assert rcs == sorted(rcs)
    # the voxelised sphere's recovery is the continuous one's, a little lower (voxel shares widen the blur)
    for s in truth["spheres"]:
        assert 0.8 * s["rc_closed_form"] < s["rc_cold"] <= s["rc_closed_form"]
    assert pydicom.dcmread(files.spect_file).Units == "BQML"
