"""RT Dose export: IOD attributes, geometry and dose values read back with pydicom and SimpleITK."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from startnet.errors import GeometryError, InputError
from startnet.report.rtdose import RT_DOSE_STORAGE, write_rtdose

REFERENCE = {
    "PatientID": "SN-001", "PatientName": "SN-001^Pseudonym", "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1",
    "FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.2", "StudyDate": "20260302", "StudyTime": "081500",
}


def _dose_image(direction=None):
    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[0:6, 0:9, 0:11]
    dose = 12.5 * np.exp(-((x - 5) ** 2 + (y - 4) ** 2 + (z - 3) ** 2) / 8.0) + rng.uniform(0, 0.01, (6, 9, 11))
    image = sitk.GetImageFromArray(dose.astype(np.float32))
    image.SetSpacing((4.8, 4.6, 5.0))
    image.SetOrigin((-120.5, -80.25, 300.0))
    if direction is not None:
        image.SetDirection(direction)
    return image, dose.astype(np.float32)


def test_attributes_geometry_and_values(tmp_path):
    image, dose = _dose_image()
    path = tmp_path / "rtdose.dcm"
    write_rtdose(image, path, reference=REFERENCE, series_description="dose")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == RT_DOSE_STORAGE and ds.file_meta.MediaStorageSOPClassUID == RT_DOSE_STORAGE
    assert ds.Modality == "RTDOSE" and ds.DoseUnits == "GY" and ds.DoseType == "PHYSICAL"
    assert ds.DoseSummationType == "RECORD" and "ReferencedRTPlanSequence" not in ds
    assert ds.FrameOfReferenceUID == REFERENCE["FrameOfReferenceUID"]
    assert ds.StudyInstanceUID == REFERENCE["StudyInstanceUID"] and ds.PatientID == "SN-001"
    assert ds.FrameIncrementPointer == pydicom.tag.Tag(0x3004, 0x000C)
    assert int(ds.NumberOfFrames) == 6 and (ds.Rows, ds.Columns) == (9, 11)
    assert ds.BitsAllocated == 32 and ds.PixelRepresentation == 0
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    assert offsets[0] == 0.0 and np.allclose(np.diff(offsets), 5.0)
    assert np.allclose([float(v) for v in ds.ImagePositionPatient], (-120.5, -80.25, 300.0))
    assert np.allclose([float(v) for v in ds.ImageOrientationPatient], (1, 0, 0, 0, 1, 0))
    assert np.allclose([float(v) for v in ds.PixelSpacing], (4.6, 4.8))  # row spacing (y), column spacing (x)
    scaling = float(ds.DoseGridScaling)
    read = ds.pixel_array.astype(np.float64) * scaling
    assert read.shape == dose.shape
    # Quantisation: stored = round(dose / scaling), so the error is at most half a step.
    assert np.max(np.abs(read - dose)) <= 0.5 * scaling + 1e-6 * dose.max()
    assert scaling < 1e-8 * dose.max()


def test_simpleitk_reads_geometry_and_stored_dose(tmp_path):
    # GDCM (SimpleITK) takes the slice spacing from GridFrameOffsetVector but returns stored
    # values: Gy = stored * DoseGridScaling (SlicerRT applies the scaling itself).
    image, dose = _dose_image()
    path = tmp_path / "rtdose.dcm"
    ds = write_rtdose(image, path, reference=REFERENCE)
    read = sitk.ReadImage(str(path), sitk.sitkFloat64)
    assert read.GetSize() == image.GetSize()
    assert np.allclose(read.GetOrigin(), image.GetOrigin(), atol=1e-4)
    assert np.allclose(read.GetSpacing(), image.GetSpacing(), atol=1e-4)
    assert np.allclose(read.GetDirection(), image.GetDirection(), atol=1e-6)
    gray = sitk.GetArrayFromImage(read) * float(ds.DoseGridScaling)
    assert np.allclose(gray, dose, atol=1e-6 * dose.max())


def test_reversed_slice_axis_is_written_with_positive_offsets(tmp_path):
    # Slice axis pointing inferior (-z): frames must be reordered so offsets still increase along
    # the normal of the image plane, and every voxel must keep its patient position.
    image, dose = _dose_image(direction=(1, 0, 0, 0, 1, 0, 0, 0, -1))
    path = tmp_path / "rtdose.dcm"
    write_rtdose(image, path, reference=REFERENCE)
    ds = pydicom.dcmread(path)
    assert np.allclose(np.diff([float(v) for v in ds.GridFrameOffsetVector]), 5.0)
    assert np.allclose([float(v) for v in ds.ImagePositionPatient], (-120.5, -80.25, 300.0 - 5 * 5.0))
    read = ds.pixel_array * float(ds.DoseGridScaling)
    assert np.allclose(read[::-1], dose, atol=1e-6 * dose.max())


def test_refuses_plan_terms_missing_reference_and_bad_values(tmp_path):
    image, _ = _dose_image()
    with pytest.raises(InputError, match="Referenced RT Plan"):
        write_rtdose(image, tmp_path / "a.dcm", reference=REFERENCE, dose_summation_type="PLAN")
    with pytest.raises(InputError, match="FrameOfReferenceUID"):
        write_rtdose(image, tmp_path / "b.dcm",
                     reference={k: v for k, v in REFERENCE.items() if k != "FrameOfReferenceUID"})
    nan = np.ones((2, 2, 2))
    nan[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_rtdose(sitk.GetImageFromArray(nan), tmp_path / "n.dcm", reference=REFERENCE)
    bad = sitk.GetImageFromArray(np.full((2, 2, 2), -1.0))
    with pytest.raises(InputError, match="negative"):
        write_rtdose(bad, tmp_path / "c.dcm", reference=REFERENCE)
    sheared, _ = _dose_image(direction=(1, 0, 0, 0, 1, 0, 0, 0.6, 0.8))
    with pytest.raises(GeometryError):
        write_rtdose(sheared, tmp_path / "d.dcm", reference=REFERENCE)
    with pytest.raises(GeometryError, match="single slice"):
        write_rtdose(sitk.GetImageFromArray(np.ones((1, 3, 3))), tmp_path / "e.dcm", reference=REFERENCE)
    assert not list(tmp_path.iterdir())


def test_reference_as_dataset(tmp_path):
    image, _ = _dose_image()
    ref = pydicom.Dataset()
    for key, value in REFERENCE.items():
        setattr(ref, key, value)
    ds = write_rtdose(image, tmp_path / "rtdose.dcm", reference=ref, tissue_heterogeneity_correction="IMAGE")
    assert ds.PatientName == "SN-001^Pseudonym" and ds.TissueHeterogeneityCorrection == "IMAGE"
