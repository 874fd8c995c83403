"""``startnet calibrate`` against the digital phantom's calibration scans (truth known).

Camera: PSF 15 mm FWHM and 8 cps/MBq (the defaults are 11 mm and 5.5). Checks: sensitivity within
2 % of truth, PSF within 10 %, each sphere's RC within its stated uncertainty (k = 2), CAL.json keys,
one file filled by both commands, and the bad inputs refused with one line.
"""

from __future__ import annotations

import json

import pytest

from startnet.cli import main
from startnet.phantom.calibration_dicom import write_calibration_scan
from startnet.phantom.calibration_scans import CalibrationScanConfig, CameraSpec, build_calibration_scan

CAMERA = CameraSpec(manufacturer="Acme", model="Gamma 9", serial="SN-42", psf_fwhm_mm=15.0,
                    sensitivity_cps_per_mbq=8.0)
OTHER = CameraSpec(manufacturer="Other", model="Cam", serial="X-1", psf_fwhm_mm=10.0, sensitivity_cps_per_mbq=5.0)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("calscans")
    out = {}
    for name, config in {
        "cylinder": CalibrationScanConfig(kind="cylinder", camera=CAMERA, seed=1),
        "spheres": CalibrationScanConfig(kind="spheres", camera=CAMERA, seed=2),
        "spheres_bqml": CalibrationScanConfig(kind="spheres", camera=CAMERA, seed=3, units="bqml"),
        "other": CalibrationScanConfig(kind="spheres", camera=OTHER, seed=4, units="bqml"),
    }.items():
        scan = build_calibration_scan(config)
        out[name] = (write_calibration_scan(scan, root / name), scan)
    return out


def _sensitivity_args(files, scan, out):
    return ["calibrate", "sensitivity", str(files.dicom_dir), "--activity-mbq", str(scan.config.cylinder_activity_mbq),
            "--activity-datetime", scan.config.activity_datetime.isoformat(), "--out", str(out)]


def test_sensitivity_then_recovery_fill_one_file_within_truth(scans, tmp_path, capsys):
    cal = tmp_path / "CAL.json"
    files, scan = scans["cylinder"]
    assert main(_sensitivity_args(files, scan, cal)) == 0
    sph_files, sph_scan = scans["spheres"]
    assert main(["calibrate", "recovery", str(sph_files.dicom_dir), "--spheres", str(sph_files.spheres_json),
                 "--out", str(cal)]) == 0
    data = json.loads(cal.read_text())
    for key in ("camera", "sensitivity_cps_per_mbq", "sensitivity_rel_sd", "psf_fwhm_mm", "psf_fwhm_rel_sd",
                "recovery", "created_utc", "source"):
        assert key in data
    assert {k: data["camera"][k] for k in ("manufacturer", "model", "serial")} == {
        "manufacturer": "Acme", "model": "Gamma 9", "serial": "SN-42"}
    assert data["camera"]["collimator"] == "MELP/PARA"
    assert data["camera"]["reconstruction"]["iterations"] == 4 and data["camera"]["reconstruction"]["subsets"] == 8
    assert data["camera"]["energy_windows"][0]["lower_kev"] == pytest.approx(187.53)
    assert set(data["source"]) == {"sensitivity", "recovery"}
    assert data["source"]["recovery"]["calibration_cps_per_mbq_used"] == data["sensitivity_cps_per_mbq"]
    # truth: 8 cps/MBq (2 %), PSF 15 mm (10 %), RC per sphere within its stated uncertainty (k = 2)
    assert data["sensitivity_cps_per_mbq"] == pytest.approx(8.0, rel=0.02)
    assert 0 < data["sensitivity_rel_sd"] < 0.05
    assert data["psf_fwhm_mm"] == pytest.approx(15.0, rel=0.10)
    assert 0 < data["psf_fwhm_rel_sd"] < 0.1
    truth = {round(s["volume_ml"], 4): s["rc_cold"] for s in sph_scan.truth["spheres"]}
    assert len(data["recovery"]) == 6
    for point in data["recovery"]:
        assert abs(point["rc"] - truth[round(point["volume_ml"], 4)]) <= 2 * point["rc_sd"], point
    for sphere in data["spheres"]:
        assert abs(sphere["rc_count_conserving"] - 1.0) <= 2 * sphere["rc_count_conserving_sd"]
    shown = capsys.readouterr().out
    assert "sensitivity 8.0" in shown and "PSF FWHM" in shown


def test_bqml_spheres_need_no_sensitivity_and_vendor_ratio(scans, tmp_path):
    cal = tmp_path / "bq.json"
    files, scan = scans["spheres_bqml"]
    assert main(["calibrate", "recovery", str(files.dicom_dir), "--spheres", str(files.spheres_json),
                 "--out", str(cal)]) == 0
    data = json.loads(cal.read_text())
    assert data["sensitivity_cps_per_mbq"] is None
    assert data["psf_fwhm_mm"] == pytest.approx(15.0, rel=0.10)
    # a Bq/mL uniform source gives the vendor's recovered/true ratio (the phantom's quantification is exact)
    cyl = CalibrationScanConfig(kind="cylinder", camera=CAMERA, seed=5, units="bqml")
    cyl_files = write_calibration_scan(build_calibration_scan(cyl), tmp_path / "cylbq")
    assert main(["calibrate", "sensitivity", str(cyl_files.dicom_dir), "--activity-mbq", "300",
                 "--activity-datetime", cyl.activity_datetime.isoformat(), "--out", str(cal)]) == 0
    data = json.loads(cal.read_text())
    assert data["vendor_quantification_ratio"] == pytest.approx(1.0, abs=0.01)


def test_show_and_compare(scans, tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for files, cal in ((scans["spheres_bqml"][0], a), (scans["other"][0], b)):
        assert main(["calibrate", "recovery", str(files.dicom_dir), "--spheres", str(files.spheres_json),
                     "--out", str(cal)]) == 0
    capsys.readouterr()
    assert main(["calibrate", "show", str(a)]) == 0
    assert "Acme Gamma 9 (serial SN-42)" in capsys.readouterr().out
    assert main(["calibrate", "show", str(a), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["camera"]["serial"] == "SN-42"
    assert main(["calibrate", "compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    table = capsys.readouterr().out
    assert "Other Cam (serial X-1)" in table and "spread" in table
    assert (tmp_path / "cmp" / "recovery_curves.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "cmp" / "calibration_comparison.html").read_text()
    assert "<table>" in page and "recovery_curves.png" in page and "SN-42" in page


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_bad_inputs_get_one_clear_line(scans, tmp_path, capsys):
    files, scan = scans["cylinder"]
    # activity time more than a day after the scan
    late = (scan.config.acquisition_datetime.replace(day=scan.config.acquisition_datetime.day + 2)).isoformat()
    args = _sensitivity_args(files, scan, tmp_path / "late.json")
    args[args.index("--activity-datetime") + 1] = late
    assert "after the scan" in _error(capsys, args)
    # counts sphere scan with no calibration
    sph_files, _ = scans["spheres"]
    assert "counts need a calibration" in _error(capsys, ["calibrate", "recovery", str(sph_files.dicom_dir),
                                                          "--spheres", str(sph_files.spheres_json),
                                                          "--out", str(tmp_path / "none.json")])
    # sphere centre outside the image; sphere VOI not holding its counts (centre moved into the background)
    bq_files, _ = scans["spheres_bqml"]
    spheres = json.loads(bq_files.spheres_json.read_text())
    outside = json.loads(json.dumps(spheres))
    outside["spheres"][2]["centre_mm"] = [900.0, 0.0, 0.0]
    (tmp_path / "outside.json").write_text(json.dumps(outside))
    recover = ["calibrate", "recovery", str(bq_files.dicom_dir), "--spheres"]
    assert "lies outside the image" in _error(capsys, recover + [str(tmp_path / "outside.json"),
                                                                 "--out", str(tmp_path / "o.json")])
    moved = json.loads(json.dumps(spheres))
    moved["spheres"][5]["centre_mm"] = [0.0, 0.0, 60.0]
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    message = _error(capsys, recover + [str(tmp_path / "moved.json"), "--out", str(tmp_path / "m.json")])
    assert "sphere_37mm" in message and "expected excess counts" in message
    # a second camera into the same file
    cal = tmp_path / "one.json"
    assert main(["calibrate", "recovery", str(bq_files.dicom_dir), "--spheres", str(bq_files.spheres_json),
                 "--out", str(cal)]) == 0
    other_files, _ = scans["other"]
    message = _error(capsys, ["calibrate", "recovery", str(other_files.dicom_dir), "--spheres",
                              str(other_files.spheres_json), "--out", str(cal)])
    assert "Acme Gamma 9 (serial SN-42)" in message and "Other Cam (serial X-1)" in message
