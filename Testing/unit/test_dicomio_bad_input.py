"""dicomio bad input (issue 3 item 4): each case raises DicomInputError naming file and attribute."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path

import dicom_factory as f
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from startnet.cli import main as cli_main
from startnet.dicomio import Overrides, discover, load_cycle
from startnet.errors import DicomInputError

INJ = dt.datetime(2026, 5, 4, 10, 0, 0)
VOL = np.zeros((6, 8, 8), np.uint16)
VOL[2:4, 2:6, 2:6] = 100
SMALL = {"spect_origin": (-32.0, -32.0, -24.0), "ct_shape": (14, 20, 20)}


def one_timepoint(root, hours=24.0, **kwargs):
    opts = dict(SMALL)
    opts.update(kwargs)
    return f.spect_and_ct(str(root), VOL, acquisition=INJ + dt.timedelta(hours=hours), injection=INJ, **opts)


def snapshot(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[path] = (os.path.getmtime(path), hashlib.sha1(fh.read()).hexdigest())
    return out


def test_non_dicom_files_mixed_in_are_skipped_and_input_untouched(tmp_path):
    one_timepoint(tmp_path / "a")
    (tmp_path / "notes.txt").write_text("scan notes")
    (tmp_path / "a" / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    shutil.copy(get_testdata_file("DICOMDIR"), tmp_path / "DICOMDIR")
    before = snapshot(tmp_path)
    cycle = load_cycle(str(tmp_path))
    assert len(cycle.timepoints) == 1
    log = "\n".join(cycle.log)
    assert f"skipped {tmp_path / 'notes.txt'}: not a DICOM file" in log
    assert f"skipped {tmp_path / 'a' / 'random.bin'}" in log
    assert "ignored DICOMDIR" in log
    assert snapshot(tmp_path) == before


def test_only_non_dicom_files(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.dat").write_bytes(b"\x01" * 300)
    with pytest.raises(DicomInputError, match="no DICOM files found.*2 file"):
        discover(str(tmp_path))
    with pytest.raises(DicomInputError, match="does not exist"):
        discover(str(tmp_path / "missing"))


def test_truncated_pixel_data(tmp_path):
    written = one_timepoint(tmp_path)
    target = Path(written["spect"])
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(DicomInputError) as err:
        load_cycle(str(tmp_path))
    assert written["spect"] in str(err.value)
    assert "PixelData (7FE0,0010) is truncated" in str(err.value)


def test_truncated_header(tmp_path):
    written = one_timepoint(tmp_path)
    target = Path(written["ct"][3])
    target.write_bytes(target.read_bytes()[:250])
    with pytest.raises(DicomInputError) as err:
        load_cycle(str(tmp_path))
    assert written["ct"][3] in str(err.value)
    assert "SeriesInstanceUID (0020,000E)" in str(err.value) or "PixelData (7FE0,0010)" in str(err.value)


def test_missing_pixel_data(tmp_path):
    written = one_timepoint(tmp_path, mutate=lambda ds: delattr(ds, "PixelData"))
    with pytest.raises(DicomInputError, match="PixelData \\(7FE0,0010\\) is missing") as err:
        load_cycle(str(tmp_path))
    assert written["spect"] in str(err.value)


def _strip_times(ds):
    for kw in ("AcquisitionDate", "AcquisitionTime", "SeriesTime", "SeriesDate", "StudyTime"):
        delattr(ds, kw)


def test_spect_without_acquisition_time(tmp_path):
    written = one_timepoint(tmp_path, mutate=_strip_times)
    with pytest.raises(DicomInputError, match="AcquisitionTime \\(0008,0032\\)") as err:
        load_cycle(str(tmp_path))
    assert written["spect"] in str(err.value)


def test_spect_without_injection_time_or_activity(tmp_path):
    written = one_timepoint(tmp_path, radiopharm=f.radiopharm_item(None))
    with pytest.raises(DicomInputError, match="RadiopharmaceuticalStartDateTime \\(0018,1078\\)") as err:
        load_cycle(str(tmp_path))
    assert written["spect"] in str(err.value)
    injection = dt.datetime(2026, 5, 4, 8, 0, tzinfo=dt.timezone.utc)
    cycle = load_cycle(str(tmp_path), Overrides(injection_datetime=injection))
    assert cycle.timepoints[0].hours_post_injection == pytest.approx(24.0)


def test_missing_activity(tmp_path):
    written = one_timepoint(tmp_path, activity_bq=None)
    with pytest.raises(DicomInputError, match="RadionuclideTotalDose \\(0018,1074\\)") as err:
        load_cycle(str(tmp_path))
    assert written["spect"] in str(err.value)


def test_two_injections_that_disagree(tmp_path):
    a = one_timepoint(tmp_path / "a", hours=4)
    b = f.spect_and_ct(str(tmp_path / "b"), VOL, acquisition=INJ + dt.timedelta(hours=24),
                       injection=INJ + dt.timedelta(hours=2), **SMALL)
    with pytest.raises(DicomInputError, match="injection times disagree") as err:
        load_cycle(str(tmp_path))
    assert a["spect"] in str(err.value) and b["spect"] in str(err.value)
    assert "RadiopharmaceuticalStartDateTime (0018,1078)" in str(err.value)
    injection = dt.datetime(2026, 5, 4, 8, 0, tzinfo=dt.timezone.utc)
    cycle = load_cycle(str(tmp_path), Overrides(injection_datetime=injection))
    assert any("differs from" in w for w in cycle.warnings)


def test_two_activities_that_disagree(tmp_path):
    a = one_timepoint(tmp_path / "a", hours=4)
    b = one_timepoint(tmp_path / "b", hours=24, activity_bq=7.0e9)
    with pytest.raises(DicomInputError, match="injected activities disagree") as err:
        load_cycle(str(tmp_path))
    assert a["spect"] in str(err.value) and b["spect"] in str(err.value)
    assert "RadionuclideTotalDose (0018,1074)" in str(err.value)


def test_non_lu177_nuclide_code_and_half_life(tmp_path):
    item = f.radiopharm_item(INJ, code=("C-163A8", "^99m^Technetium"))
    written = one_timepoint(tmp_path / "code", radiopharm=item)
    with pytest.raises(DicomInputError, match="Radionuclide Code Sequence \\(0054,0300\\)") as err:
        load_cycle(str(tmp_path / "code"))
    assert written["spect"] in str(err.value)
    item = f.radiopharm_item(INJ, half_life_s=6.0067 * 3600, code=None)
    written = one_timepoint(tmp_path / "hl", radiopharm=item)
    with pytest.raises(DicomInputError, match="RadionuclideHalfLife \\(0018,1075\\).*not a 177Lu") as err:
        load_cycle(str(tmp_path / "hl"))
    assert written["spect"] in str(err.value)


def test_inconsistent_ct_slice_spacing(tmp_path):
    acq = INJ + dt.timedelta(hours=24)
    study, for_uid = "1.2.826.0.1.1", "1.2.826.0.1.2"
    f.write_nm_multiframe(str(tmp_path / "spect"), VOL, (-32, -32, -24), (8, 8, 8), acquisition=acq,
                          injection=INJ, study_uid=study, for_uid=for_uid)
    z = [-26.0 + 4.0 * k for k in range(14)]
    z[7:] = [v + 4.0 for v in z[7:]]  # one slice missing: an 8 mm gap
    paths = f.write_ct_series(str(tmp_path / "ct"), np.zeros((14, 20, 20)), (-32, -32, -26), (4, 4, 4),
                              acquisition=acq, study_uid=study, for_uid=for_uid, z_positions=z, extension="")
    with pytest.raises(DicomInputError, match="inconsistent slice spacing: gap of 8.000 mm") as err:
        load_cycle(str(tmp_path))
    message = str(err.value)
    assert "CT series" in message and paths[6] in message and paths[7] in message
    assert "ImagePositionPatient (0020,0032)" in message


def test_duplicate_ct_slice(tmp_path):
    acq = INJ + dt.timedelta(hours=24)
    study, for_uid = "1.2.826.0.1.3", "1.2.826.0.1.4"
    f.write_nm_multiframe(str(tmp_path / "spect"), VOL, (-32, -32, -24), (8, 8, 8), acquisition=acq,
                          injection=INJ, study_uid=study, for_uid=for_uid)
    z = [-26.0 + 4.0 * k for k in range(14)]
    z[5] = z[4]
    f.write_ct_series(str(tmp_path / "ct"), np.zeros((14, 20, 20)), (-32, -32, -26), (4, 4, 4),
                      acquisition=acq, study_uid=study, for_uid=for_uid, z_positions=z)
    with pytest.raises(DicomInputError, match="same position.*ImagePositionPatient \\(0020,0032\\) duplicated"):
        load_cycle(str(tmp_path))


def test_ct_not_covering_spect(tmp_path):
    # SPECT spans z -28..20 mm; a CT of 6 slices spans -28..-4 mm: 24 of 48 mm uncovered.
    one_timepoint(tmp_path / "half", ct_shape=(6, 20, 20), ct_origin=(-32.0, -32.0, -26.0))
    with pytest.raises(DicomInputError, match="24.0 mm \\(50 %\\) of the SPECT field of view has no CT"):
        load_cycle(str(tmp_path / "half"))
    # 10 slices over -30..10 mm: 10 mm uncovered (> one SPECT slice, < 25 %): a warning saying by how much.
    one_timepoint(tmp_path / "most", ct_shape=(10, 20, 20), ct_origin=(-32.0, -32.0, -28.0))
    cycle = load_cycle(str(tmp_path / "most"))
    assert any("10.0 mm (21 %) of the SPECT field of view has no CT" in w for w in cycle.warnings)


def test_missing_geometry_in_detector_information_sequence(tmp_path):
    written = one_timepoint(tmp_path, mutate=lambda ds: delattr(ds.DetectorInformationSequence[0],
                                                               "ImagePositionPatient"))
    with pytest.raises(DicomInputError, match="ImagePositionPatient \\(0020,0032\\) is missing in Detector "
                                              "Information Sequence \\(0054,0022\\)") as err:
        load_cycle(str(tmp_path))
    assert written["spect"] in str(err.value)


def test_spacing_between_slices_falls_back_to_slice_thickness(tmp_path):
    one_timepoint(tmp_path, mutate=lambda ds: delattr(ds, "SpacingBetweenSlices"))
    cycle = load_cycle(str(tmp_path))
    assert cycle.timepoints[0].spect_bqml.GetSpacing()[2] == pytest.approx(8.0)
    assert any("SpacingBetweenSlices (0018,0088) missing; used SliceThickness" in w for w in cycle.warnings)


def test_unknown_units_and_counts_without_calibration(tmp_path):
    written = one_timepoint(tmp_path / "u", units="GML")
    with pytest.raises(DicomInputError, match="Units \\(0054,1001\\) is 'GML'") as err:
        load_cycle(str(tmp_path / "u"))
    assert written["spect"] in str(err.value)
    written = one_timepoint(tmp_path / "c", units="CNTS")
    with pytest.raises(DicomInputError, match="--calibration-cps-per-mbq") as err:
        load_cycle(str(tmp_path / "c"))
    assert written["spect"] in str(err.value) and "Units (0054,1001) CNTS" in str(err.value)


def test_several_patients(tmp_path):
    one_timepoint(tmp_path / "a", hours=4)
    one_timepoint(tmp_path / "b", hours=24, patient_id="P002")
    with pytest.raises(DicomInputError, match="several patients \\(PatientID \\(0010,0020\\)\\).*P001.*P002"):
        load_cycle(str(tmp_path))


def test_scan_before_injection(tmp_path):
    written = one_timepoint(tmp_path, hours=-2.0)
    with pytest.raises(DicomInputError, match="before the injection") as err:
        load_cycle(str(tmp_path))
    assert written["spect"] in str(err.value)


def test_projections_scouts_and_reports_ignored_with_log(tmp_path):
    written = one_timepoint(tmp_path / "tp")
    proj = pydicom.dcmread(written["spect"])
    proj.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    proj.SeriesInstanceUID = pydicom.uid.generate_uid()
    proj.save_as(tmp_path / "projections")
    scout = pydicom.dcmread(written["ct"][0])
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.SeriesInstanceUID = pydicom.uid.generate_uid()
    scout.save_as(tmp_path / "scout.dcm")
    disc = discover(str(tmp_path))
    reasons = {s.reason for s in disc.ignored_series}
    assert "SPECT projections (ImageType TOMO, not RECON TOMO)" in reasons
    assert "CT localizer / scout (ImageType LOCALIZER)" in reasons
    assert len(disc.spect_series) == 1 and len(disc.ct_series) == 1
    assert len(load_cycle(str(tmp_path)).timepoints) == 1


def test_cli_inspect_prints_timepoints_and_clean_errors(tmp_path, capsys):
    one_timepoint(tmp_path / "ok", units="CNTS", rescale_slope=None)
    code = cli_main(["inspect", str(tmp_path / "ok"), "--calibration-cps-per-mbq", "9.0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "24.00 h p.i." in out and "mode counts" in out and "CF 9 cps/MBq" in out
    code = cli_main(["inspect", str(tmp_path / "ok"), "--json", "--calibration-cps-per-mbq", "9.0"])
    assert code == 0 and '"hours_post_injection": 24.0' in capsys.readouterr().out
    code = cli_main(["inspect", str(tmp_path / "ok")])
    err = capsys.readouterr().err
    assert code == DicomInputError.exit_code
    assert err.startswith("error: ") and "--calibration-cps-per-mbq" in err and "Traceback" not in err


def test_frames_not_matching_slices_and_gated_spect(tmp_path):
    written = one_timepoint(tmp_path / "ew", mutate=lambda ds: setattr(ds, "NumberOfSlices", 3))
    with pytest.raises(DicomInputError, match="NumberOfFrames \\(0028,0008\\) 6 differs from NumberOfSlices") as err:
        load_cycle(str(tmp_path / "ew"))
    assert written["spect"] in str(err.value)
    gated = ["ORIGINAL", "PRIMARY", "RECON GATED TOMO", "EMISSION"]
    one_timepoint(tmp_path / "gated", mutate=lambda ds: setattr(ds, "ImageType", gated))
    disc = discover(str(tmp_path / "gated"))
    assert [s.reason for s in disc.ignored_series] == ["gated SPECT (ImageType GATED TOMO) is not used for dosimetry"]


def test_localizer_inside_the_ct_series_is_set_apart(tmp_path):
    written = one_timepoint(tmp_path)
    scout = pydicom.dcmread(written["ct"][0])
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    scout.SOPInstanceUID = pydicom.uid.generate_uid()
    scout.save_as(tmp_path / "CT" / "topogram")  # same SeriesInstanceUID as the axial slices
    cycle = load_cycle(str(tmp_path))
    assert cycle.timepoints[0].ct_hu.GetSize() == (20, 20, 14)
    assert any("mixes roles" in line for line in cycle.log)


def test_enhanced_ct_frame_without_position(tmp_path):
    acq = INJ + dt.timedelta(hours=24)
    study, for_uid = "1.2.826.0.1.7", "1.2.826.0.1.8"
    f.write_nm_multiframe(str(tmp_path / "spect"), VOL, (-32, -32, -24), (8, 8, 8), acquisition=acq,
                          injection=INJ, study_uid=study, for_uid=for_uid)
    path = f.write_enhanced_ct(str(tmp_path / "ct"), np.zeros((14, 20, 20)), (-32, -32, -26), (4, 4, 4),
                               acquisition=acq, study_uid=study, for_uid=for_uid)
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    ds.save_as(path)
    with pytest.raises(DicomInputError, match="frame 3: ImagePositionPatient \\(0020,0032\\) is missing in "
                                              "PlanePositionSequence \\(0020,9113\\)") as err:
        load_cycle(str(tmp_path))
    assert path in str(err.value)
