"""The phantom written to disk: DICOM read back with pydicom, seg.nrrd/labels round trip, truth.json, CLI."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.valuerep import DT

from startnet.cli import main
from startnet.errors import OutputError
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

HALF_LIFE_S = 159.528 * 3600.0


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    phantom = build_phantom(PhantomConfig(preset="small", seed=4, noise=False, blur=False, motion=True))
    files = write_phantom_dicom(phantom, tmp_path_factory.mktemp("phantom"))
    return phantom, files


def _local_to_utc(date: str, time: str, offset: str) -> datetime:
    sign = 1 if offset[0] == "+" else -1
    tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    return datetime.strptime(date + time.split(".")[0], "%Y%m%d%H%M%S").replace(tzinfo=tz).astimezone(timezone.utc)


def test_every_file_reads_with_pydicom(written):
    phantom, files = written
    paths = [p for p in files.dicom_dir.rglob("*") if p.is_file()]
    assert len(paths) == len(phantom.timepoints) * (phantom.config.ct_grid.size_xyz[2] + 1)
    assert any(p.suffix == "" for p in paths) and any(p.suffix == ".dcm" for p in paths)
    for path in paths:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.PatientID == phantom.config.patient_id
        assert ds.pixel_array.size > 0


def test_ct_series_geometry_values_and_shared_frame_of_reference(written):
    phantom, files = written
    for tp, tpf in zip(phantom.timepoints, files.timepoints):
        nm = pydicom.dcmread(tpf.spect_file, stop_before_pixels=True)
        slices = [pydicom.dcmread(p) for p in tpf.ct_files[::7]]
        ct = sitk.GetArrayFromImage(tp.ct_hu)
        for ds in slices:
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
            assert ds.FrameOfReferenceUID == nm.FrameOfReferenceUID == tpf.frame_of_reference_uid
            assert ds.StudyInstanceUID == nm.StudyInstanceUID and ds.SeriesInstanceUID != nm.SeriesInstanceUID
            k = int(ds.InstanceNumber) - 1
            expected = np.array(tp.ct_hu.GetOrigin()) + np.array([0, 0, tp.ct_hu.GetSpacing()[2] * k])
            assert np.allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-4)
            assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            assert [float(v) for v in ds.PixelSpacing] == [tp.ct_hu.GetSpacing()[1], tp.ct_hu.GetSpacing()[0]]
            assert float(ds.SliceThickness) == tp.ct_hu.GetSpacing()[2]
            hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            assert np.array_equal(hu, ct[k])
            assert ds.AcquisitionDate and ds.AcquisitionTime and ds.TimezoneOffsetFromUTC


def test_nm_spect_attributes_geometry_and_bqml_values(written):
    phantom, files = written
    for tp, tpf in zip(phantom.timepoints, files.timepoints):
        ds = pydicom.dcmread(tpf.spect_file)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.20" and ds.Modality == "NM"
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
        size = tp.spect_bqml.GetSize()
        assert (int(ds.NumberOfFrames), ds.Rows, ds.Columns) == (size[2], size[1], size[0])
        detector = ds.DetectorInformationSequence[0]
        assert np.allclose([float(v) for v in detector.ImagePositionPatient], tp.spect_bqml.GetOrigin(), atol=1e-4)
        assert [float(v) for v in detector.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.SpacingBetweenSlices) == float(ds.SliceThickness) == tp.spect_bqml.GetSpacing()[2]
        assert ds.Units == "BQML" and ds.DecayCorrection == "START"
        slope = float(ds.RescaleSlope)
        assert ds.RealWorldValueMappingSequence[0].RealWorldValueSlope == pytest.approx(slope)
        assert ds.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "Bq/ml"
        values = ds.pixel_array * slope + float(ds.RescaleIntercept)
        truth = sitk.GetArrayFromImage(tp.spect_bqml)
        assert np.abs(values - truth).max() <= 0.5 * slope * (1 + 1e-6)
        voxel_ml = np.prod(tp.spect_bqml.GetSpacing()) / 1000.0
        assert values.sum() * voxel_ml / 1e6 == pytest.approx(tp.total_activity_mbq, rel=1e-3)
        assert "ActualFrameDuration" not in ds  # Type 1C: STATIC / WHOLE BODY only
        rotation = ds.RotationInformationSequence[0]
        assert int(rotation.ActualFrameDuration) * int(rotation.NumberOfFramesInRotation) == 1200000
        window = ds.EnergyWindowInformationSequence[0].EnergyWindowRangeSequence[0]
        assert float(window.EnergyWindowLowerLimit) == pytest.approx(187.5, abs=0.1)
        assert float(window.EnergyWindowUpperLimit) == pytest.approx(229.2, abs=0.1)


def test_radiopharmaceutical_and_time_stamps_to_the_second(written):
    phantom, files = written
    for tp, tpf in zip(phantom.timepoints, files.timepoints):
        ds = pydicom.dcmread(tpf.spect_file, stop_before_pixels=True)
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        assert float(rp.RadionuclideTotalDose) == 7400.0  # MBq, NM Isotope Module C.8.4.10.1.7
        assert float(rp.RadionuclideHalfLife) == pytest.approx(HALF_LIFE_S, rel=1e-6)
        code = rp.RadionuclideCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == ("447553000", "SCT")
        injection = DT(rp.RadiopharmaceuticalStartDateTime)
        assert injection.utcoffset() is not None and injection == phantom.injection_datetime
        acquired = _local_to_utc(ds.AcquisitionDate, ds.AcquisitionTime, ds.TimezoneOffsetFromUTC)
        hours = (acquired - injection).total_seconds() / 3600.0
        assert hours == pytest.approx(tp.hours_post_injection, abs=1 / 3600)


def test_daylight_saving_change_and_counts_mode(tmp_path):
    injection = datetime(2025, 3, 27, 9, 0, tzinfo=timezone(timedelta(hours=1)))  # DST starts 30 March
    config = PhantomConfig(preset="small", noise=False, blur=False, motion=False, units="counts",
                           timepoints_h=(4.0, 96.0), injection_datetime=injection,
                           radionuclide_total_dose_units="Bq")
    phantom = build_phantom(config)
    files = write_phantom_dicom(phantom, tmp_path / "dst")
    early, late = (pydicom.dcmread(t.spect_file) for t in files.timepoints)
    assert (early.TimezoneOffsetFromUTC, late.TimezoneOffsetFromUTC) == ("+0100", "+0200")
    assert late.AcquisitionTime.startswith("100000")  # 09:00 CET + 96 h = 10:00 CEST
    rp = late.RadiopharmaceuticalInformationSequence[0]
    assert rp.RadiopharmaceuticalStartDateTime.endswith("+0100")
    assert float(rp.RadionuclideTotalDose) == 7.4e9
    assert late.Units == "CNTS" and "RescaleSlope" not in late
    lam = math.log(2) / HALF_LIFE_S
    rotation = late.RotationInformationSequence[0]
    duration_s = int(rotation.ActualFrameDuration) * int(rotation.NumberOfFramesInRotation) / 1000.0
    activity_mbq = late.pixel_array.astype(float).sum() * lam / (config.calibration_cps_per_mbq
                                                                 * (1 - math.exp(-lam * duration_s)))
    assert activity_mbq == pytest.approx(phantom.timepoints[1].total_activity_mbq, rel=2e-3)


def test_segmentation_nrrd_labels_and_truth_round_trip(written):
    phantom, files = written
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(files.segmentation_nrrd))
    seg = reader.Execute()
    names = {}
    i = 0
    while seg.HasMetaDataKey(f"Segment{i}_Name"):
        names[int(seg.GetMetaData(f"Segment{i}_LabelValue"))] = seg.GetMetaData(f"Segment{i}_Name")
        assert seg.GetMetaData(f"Segment{i}_Layer") == "0"
        assert len(seg.GetMetaData(f"Segment{i}_Color").split()) == 3
        i += 1
    assert names == phantom.label_names
    assert np.array_equal(sitk.GetArrayFromImage(seg), sitk.GetArrayFromImage(phantom.labels))
    assert np.allclose(seg.GetOrigin(), phantom.labels.GetOrigin()) and seg.GetSpacing() == phantom.labels.GetSpacing()
    nii = sitk.ReadImage(str(files.labels_nifti))
    assert np.array_equal(sitk.GetArrayFromImage(nii), sitk.GetArrayFromImage(phantom.labels))
    assert np.allclose(nii.GetOrigin(), phantom.labels.GetOrigin(), atol=1e-4)
    mapping = json.loads(Path(files.labels_json).read_text())
    assert {int(k): v for k, v in mapping.items()} == phantom.label_names
    truth = json.loads(Path(files.truth_json).read_text())
    kidney = truth["structures"]["kidney_left"]
    assert kidney["mean_dose_gy"] == pytest.approx(phantom.truth["structures"]["kidney_left"]["mean_dose_gy"])
    assert len(kidney["activity_mbq"]) == len(truth["timepoints"]) == 4
    transform = truth["timepoints"][1]["true_transform"]
    assert transform["parameters"] == list(phantom.timepoints[1].true_transform.GetParameters())
    assert np.allclose(np.array(transform["matrix_4x4"])[:3, :3], np.reshape(transform["matrix"], (3, 3)))
    assert truth["injection"]["activity_mbq"] == 7400.0 and "photon_gy" in truth["methods"]


def test_refuses_to_overwrite_a_phantom(written):
    phantom, files = written
    with pytest.raises(OutputError, match="already holds a phantom"):
        write_phantom_dicom(phantom, files.out_dir)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["phantom", "--out", str(out), "--no-noise", "--no-blur", "--timepoints-h", "24,96",
                 "--units", "counts", "--seed", "3"])
    assert code == 0
    assert "2 time points" in capsys.readouterr().out
    truth = json.loads((out / "truth.json").read_text())
    assert truth["config"]["units"] == "counts" and truth["config"]["timepoints_h"] == [24.0, 96.0]
    assert main(["phantom", "--out", str(out)]) == 2
    assert "already holds a phantom" in capsys.readouterr().err
