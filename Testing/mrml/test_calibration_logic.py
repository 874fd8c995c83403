"""Camera Calibration module logic on a real MRML scene (slicer-core) with the phantom's calibration scans.

Camera: PSF 15 mm FWHM and 8 cps/MBq (defaults 11 mm, 5.5). Checks:
- sensitivity and PSF/recovery run by the panel on a DICOM file list (a database series) equal the
  CLI's on the folder, into CAL.json files with the same camera and numbers;
- sphere centres placed as markups (RAS) give the same recovery coefficients as SPHERES.json (LPS);
  a moved centre changes them, bad markups are refused with one line;
- the recovery chart's series are coloured (not the default black) and distinct; running again
  refills the same nodes;
- the Dosimetry module's job with a calibration folder applies the camera's file: results provenance
  names it, count images loaded with another CF are rescaled, kidney doses move to truth.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import SimpleITK as sitk
from dicom_database import DictDicomDatabase

from startnet.calibration.spheres import read_spheres
from startnet.cli import main
from startnet.dicomio.timing import get_zone
from startnet.errors import InputError
from startnet.mrml.calibration_logic import CalibrationSceneLogic
from startnet.mrml.calibration_spheres import markups_centres_lps
from startnet.mrml.scene import new_scene
from startnet.mrml.tables import records_from_table
from startnet.phantom.calibration_dicom import write_calibration_scan
from startnet.phantom.calibration_scans import CalibrationScanConfig, CameraSpec, build_calibration_scan
from startnet.phantom.config import GridSpec

CAMERA = CameraSpec(manufacturer="Acme", model="Gamma 9", serial="SN-42", psf_fwhm_mm=15.0,
                    sensitivity_cps_per_mbq=8.0)
GRID = GridSpec((64, 64, 64), (7.0, 7.0, 7.0))
ZONE = "Europe/Stockholm"


def _files(folder) -> list:
    return [str(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()]


def _copy(cal: Path, path: Path) -> Path:
    """A copy of the panel's CAL.json (it holds the sensitivity the counts sphere scan needs)."""
    path.write_bytes(cal.read_bytes())
    return path


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("calpanel")
    out = {}
    for kind, seed in (("cylinder", 1), ("spheres", 2)):
        config = CalibrationScanConfig(kind=kind, camera=CAMERA, grid=GRID, seed=seed)
        out[kind] = (write_calibration_scan(build_calibration_scan(config), root / kind), config)
    return out


@pytest.fixture(scope="module")
def cli_cal(scans, tmp_path_factory):
    """CAL.json made by ``startnet calibrate`` (sensitivity then recovery) on the folders."""
    cal = tmp_path_factory.mktemp("cli") / "CAL.json"
    cyl, config = scans["cylinder"]
    assert main(["calibrate", "sensitivity", str(cyl.dicom_dir), "--activity-mbq", str(config.cylinder_activity_mbq),
                 "--activity-datetime", config.activity_datetime.isoformat(), "--out", str(cal)]) == 0
    sph, _ = scans["spheres"]
    assert main(["calibrate", "recovery", str(sph.dicom_dir), "--spheres", str(sph.spheres_json),
                 "--out", str(cal)]) == 0
    return json.loads(cal.read_text())


@pytest.fixture(scope="module")
def panel(scans, tmp_path_factory):
    """The panel's steps: sensitivity from the database files, spheres loaded as markups, recovery from them."""
    scene = new_scene()
    logic = CalibrationSceneLogic(scene)
    cal = tmp_path_factory.mktemp("panel") / "CAL_acme.json"
    cyl, config = scans["cylinder"]
    sens = logic.sensitivity(_files(cyl.dicom_dir), config.cylinder_activity_mbq,
                             config.activity_datetime.isoformat(), cal, origin="DICOM database")
    sph, _ = scans["spheres"]
    phantom, markups, table = logic.spheres_from_file(sph.spheres_json, timezone=ZONE)
    rec = logic.recovery_from_markups(_files(sph.dicom_dir), markups, table, cal,
                                      sphere_kbq_ml=phantom.sphere_kbq_ml, background_kbq_ml=phantom.background_kbq_ml,
                                      reference_datetime=phantom.reference_datetime.isoformat(), timezone=ZONE,
                                      origin="DICOM database")
    return {"scene": scene, "logic": logic, "cal": cal, "sens": sens, "rec": rec, "markups": markups,
            "table": table, "phantom": phantom}


def test_panel_sensitivity_and_recovery_equal_the_cli(panel, cli_cal, scans):
    data = json.loads(panel["cal"].read_text())
    assert data["camera"] == cli_cal["camera"]
    assert data["sensitivity_cps_per_mbq"] == pytest.approx(cli_cal["sensitivity_cps_per_mbq"], rel=1e-12)
    assert data["sensitivity_rel_sd"] == pytest.approx(cli_cal["sensitivity_rel_sd"], rel=1e-12)
    assert data["sensitivity_cps_per_mbq"] == pytest.approx(8.0, rel=0.02)  # truth
    assert data["psf_fwhm_mm"] == pytest.approx(cli_cal["psf_fwhm_mm"], rel=1e-6)
    assert data["psf_fwhm_mm"] == pytest.approx(15.0, rel=0.10)
    assert [r["volume_ml"] for r in data["recovery"]] == pytest.approx([r["volume_ml"] for r in cli_cal["recovery"]])
    assert [r["rc"] for r in data["recovery"]] == pytest.approx([r["rc"] for r in cli_cal["recovery"]], rel=1e-5)
    assert data["source"]["sensitivity"]["series_instance_uids"] == cli_cal["source"]["sensitivity"][
        "series_instance_uids"]
    assert data["source"]["recovery"]["origin"] == "DICOM database"
    assert data["source"]["recovery"]["spheres_file"] == f"markups '{panel['markups'].GetName()}'"
    assert data["source"]["recovery"]["command"] == "Slicer Camera Calibration module"
    # the cylinder's SPECT is shown in Bq/mL: its activity is the source's at the acquisition start
    from startnet.mrml.volumes import volume_to_sitk

    image = volume_to_sitk(panel["sens"].nodes["spect"])
    voxel_ml = 7.0 ** 3 / 1000.0
    shown_mbq = float(sitk.GetArrayViewFromImage(image).sum()) * voxel_ml * 1e-6
    expected_mbq = panel["sens"].values["sensitivity"]["activity_at_acquisition_start_mbq"]
    assert shown_mbq == pytest.approx(expected_mbq, rel=0.01)
    row = records_from_table(panel["sens"].nodes["table"])[0]
    assert row["sensitivity_cps_per_mbq"] == pytest.approx(data["sensitivity_cps_per_mbq"])
    assert "Sensitivity 8." in panel["sens"].summary and "Acme Gamma 9" in panel["sens"].summary


def test_markups_centres_are_the_spheres_file_centres_and_give_its_rcs(panel, scans, tmp_path):
    sph, _ = scans["spheres"]
    phantom = read_spheres(sph.spheres_json, get_zone(ZONE))
    centres = markups_centres_lps(panel["markups"])
    for sphere in phantom.spheres:
        assert centres[sphere.name] == pytest.approx(list(sphere.centre_mm), abs=1e-6)
    # RAS in the markups: x and y of the LPS centres change sign
    ras = [0.0, 0.0, 0.0]
    panel["markups"].GetNthControlPointPositionWorld(0, ras)
    first = phantom.spheres[0].centre_mm
    assert ras == pytest.approx([-first[0], -first[1], first[2]])
    logic = CalibrationSceneLogic(new_scene())
    from_file = logic.recovery(_files(sph.dicom_dir), phantom, _copy(panel["cal"], tmp_path / "file.json"))
    by_name = {s["name"]: s for s in from_file.values["spheres"]}
    for sphere in panel["rec"].values["spheres"]:
        assert sphere["rc"] == pytest.approx(by_name[sphere["name"]]["rc"], rel=1e-5), sphere["name"]
        assert sphere["rc_count_conserving"] == pytest.approx(by_name[sphere["name"]]["rc_count_conserving"],
                                                              rel=1e-5)


def test_moved_or_bad_markups(panel, scans, tmp_path):
    sph, _ = scans["spheres"]
    scene = new_scene()
    logic = CalibrationSceneLogic(scene)
    phantom, markups, table = logic.spheres_from_file(sph.spheres_json, timezone=ZONE)
    kwargs = dict(sphere_kbq_ml=phantom.sphere_kbq_ml, background_kbq_ml=phantom.background_kbq_ml,
                  reference_datetime=phantom.reference_datetime.isoformat(), timezone=ZONE)
    largest = max(range(len(phantom.spheres)), key=lambda i: phantom.spheres[i].volume_ml)
    ras = [0.0, 0.0, 0.0]
    markups.GetNthControlPointPositionWorld(largest, ras)
    markups.SetNthControlPointPositionWorld(largest, ras[0] + 7.0, ras[1], ras[2])  # one voxel off
    moved = logic.recovery_from_markups(_files(sph.dicom_dir), markups, table, _copy(panel["cal"], tmp_path / "m.json"),
                                       **kwargs)
    name = phantom.spheres[largest].name
    before = next(s["rc"] for s in panel["rec"].values["spheres"] if s["name"] == name)
    after = next(s["rc"] for s in moved.values["spheres"] if s["name"] == name)
    print(f"RC of {name}: centre as placed {before:.3f}, 7 mm off {after:.3f}")
    assert after < before - 0.02
    _copy(panel["cal"], tmp_path / "bad.json")
    markups.SetNthControlPointLabel(0, "unknown sphere")
    with pytest.raises(InputError, match="no volume for unknown sphere") as error:
        logic.recovery_from_markups(_files(sph.dicom_dir), markups, table, tmp_path / "bad.json", **kwargs)
    assert "\n" not in str(error.value)
    markups.SetNthControlPointLabel(0, phantom.spheres[1].name)
    with pytest.raises(InputError, match="two control points are labelled"):
        logic.recovery_from_markups(_files(sph.dicom_dir), markups, table, tmp_path / "bad.json", **kwargs)
    markups.SetNthControlPointLabel(0, phantom.spheres[0].name)
    markups.SetNthControlPointPositionWorld(0, 5000.0, 0.0, 0.0)
    with pytest.raises(InputError, match="lies outside the image"):
        logic.recovery_from_markups(_files(sph.dicom_dir), markups, table, tmp_path / "bad.json", **kwargs)
    with pytest.raises(InputError, match="choose the calibration file"):
        logic.recovery_from_markups(_files(sph.dicom_dir), markups, table, "", **kwargs)
    empty = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Empty")
    with pytest.raises(InputError, match="no control points"):
        logic.recovery_from_markups(_files(sph.dicom_dir), empty, table, tmp_path / "bad.json", **kwargs)


def test_recovery_chart_is_coloured_and_a_rerun_replaces_its_nodes(panel, scans):
    rec = panel["rec"]
    chart = rec.nodes["chart"]
    assert chart.GetXAxisLogScale()
    series = rec.nodes["series"]
    assert set(series) == {"rc", "rc_cc", "fit", "default"}
    colours = [tuple(node.GetColor()) for node in series.values()]
    assert all(sum(c) > 0.1 for c in colours), colours  # not the default black
    assert len(set(colours)) == len(colours)
    assert all(chart.HasPlotSeriesNodeID(node.GetID()) for node in series.values())
    assert series["rc"].GetLineStyle() == series["rc"].LineStyleNone
    assert series["fit"].GetLineStyle() == series["fit"].LineStyleSolid
    assert series["default"].GetLineStyle() == series["default"].LineStyleDash
    rows = records_from_table(rec.nodes["table"])
    assert [r["volume_ml"] for r in rows] == sorted(r["volume_ml"] for r in rows) and len(rows) == 6
    scene, logic = panel["scene"], panel["logic"]
    ids = {role: node.GetID() for role, node in series.items()}
    count = scene.GetNumberOfNodes()
    sph, _ = scans["spheres"]
    phantom = panel["phantom"]
    again = logic.recovery_from_markups(_files(sph.dicom_dir), panel["markups"], panel["table"], panel["cal"],
                                        sphere_kbq_ml=phantom.sphere_kbq_ml,
                                        background_kbq_ml=phantom.background_kbq_ml,
                                        reference_datetime=phantom.reference_datetime.isoformat(), timezone=ZONE)
    assert scene.GetNumberOfNodes() == count
    assert {role: node.GetID() for role, node in again.nodes["series"].items()} == ids
    assert again.nodes["chart"].GetID() == chart.GetID()
    assert again.nodes["spect"].GetID() == rec.nodes["spect"].GetID()
    assert scene.GetNodesByClass("vtkMRMLPlotChartNode").GetNumberOfItems() == 1


def test_another_cameras_scan_into_the_same_file_is_refused(panel, tmp_path):
    other = CameraSpec(manufacturer="Other", model="Cam", serial="X-1", psf_fwhm_mm=10.0, sensitivity_cps_per_mbq=5.0)
    config = CalibrationScanConfig(kind="cylinder", camera=other, grid=GRID, seed=9)
    files = write_calibration_scan(build_calibration_scan(config), tmp_path / "other")
    before = hashlib.sha256(panel["cal"].read_bytes()).hexdigest()
    with pytest.raises(InputError, match="describes Acme Gamma 9 .*this scan comes from Other Cam"):
        panel["logic"].sensitivity(_files(files.dicom_dir), config.cylinder_activity_mbq,
                                   config.activity_datetime.isoformat(), panel["cal"])
    assert hashlib.sha256(panel["cal"].read_bytes()).hexdigest() == before


def test_database_series_are_listed_and_shown(panel, scans):
    import pydicom

    from startnet.mrml.dicom_cycles import patient_spect_series

    content = {}
    for kind in ("cylinder", "spheres"):
        for path in _files(scans[kind][0].dicom_dir):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            content.setdefault("phantom", {}).setdefault(ds.StudyInstanceUID, {}).setdefault(
                ds.SeriesInstanceUID, []).append(path)
    series = patient_spect_series(DictDicomDatabase(content, "Phantom^NEMA"), "phantom")
    assert len(series) == 2 and all("Acme Gamma 9 (serial SN-42)" in s.label for s in series)
    spheres = next(s for s in series if s.files == _files(scans["spheres"][0].dicom_dir))
    scene = panel["scene"]
    node = panel["logic"].show_acquisition(spheres.files, panel["cal"])
    count = scene.GetNumberOfNodes()
    assert node.GetAttribute("startnet.units") == "Bq/mL"
    # counts read with the file's sensitivity: the image is what the recovery step measured on
    from startnet.mrml.volumes import volume_to_sitk

    # the images are kept in names: a SimpleITK array view does not keep its image alive (a view of a temporary
    # reads freed memory, which gave NaN here depending on which other test modules were collected)
    shown_image, measured_image = volume_to_sitk(node), volume_to_sitk(panel["rec"].nodes["spect"])
    shown = sitk.GetArrayViewFromImage(shown_image)
    measured = sitk.GetArrayViewFromImage(measured_image)
    assert float(shown.sum()) == pytest.approx(float(measured.sum()), rel=1e-6)
    assert panel["logic"].show_acquisition(spheres.files, panel["cal"]).GetID() == node.GetID()
    assert scene.GetNumberOfNodes() == count
    assert panel["markups"].GetDisplayNode() is not None
