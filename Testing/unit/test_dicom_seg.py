"""DICOM SEG export: segment labels and codes, and mask voxel counts on the CT grid read back."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from startnet.errors import DicomInputError, GeometryError, InputError
from startnet.report.dicom_seg import rgb_to_cielab, structure_codes, write_dicom_seg

N_SLICES, ROWS, COLS = 10, 24, 28
PIXEL_MM, SLICE_MM = 2.0, 3.0
ORIGIN = (-30.0, -20.0, 100.0)


def _ct_series(tmp_path=None):
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(N_SLICES):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "SN-001", "SN-001^", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260302", "081500", "1", ""
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.Manufacturer = "test"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SLICE_MM]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
        ds.SliceThickness = SLICE_MM
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.zeros((ROWS, COLS), dtype="<i2").tobytes()
        out.append(ds)
    if tmp_path is None:
        return out
    paths = []
    for k, ds in enumerate(out):
        paths.append(tmp_path / f"ct{k:03d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def _ct_grid_image(array_zyx):
    image = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    image.SetSpacing((PIXEL_MM, PIXEL_MM, SLICE_MM))
    image.SetOrigin(ORIGIN)
    return image


def _ct_centres():
    z, y, x = np.mgrid[0:N_SLICES, 0:ROWS, 0:COLS].astype(float)
    return ORIGIN[0] + x * PIXEL_MM, ORIGIN[1] + y * PIXEL_MM, ORIGIN[2] + z * SLICE_MM


def test_labels_codes_and_round_trip_on_ct_grid(tmp_path):
    cx, cy, cz = _ct_centres()
    sphere = ((cx - 2) ** 2 + (cy - 4) ** 2 + (cz - 113) ** 2) <= 8.0 ** 2
    # Box on a coarse 6 mm grid whose voxel edges fall between CT voxel centres: the nearest-neighbour
    # resampled mask holds exactly the CT centres inside the box's physical extent.
    coarse = sitk.Image(6, 5, 3, sitk.sitkUInt8)
    coarse.SetSpacing((6.0, 6.0, 6.0))
    coarse.SetOrigin((-26.5, -14.5, 104.0))
    coarse[1:4, 1:3, 0:2] = 1
    lo = np.array(coarse.GetOrigin()) + (np.array([1, 1, 0]) - 0.5) * 6.0
    hi = np.array(coarse.GetOrigin()) + (np.array([4, 3, 2]) - 0.5) * 6.0
    box_truth = ((cx > lo[0]) & (cx < hi[0]) & (cy > lo[1]) & (cy < hi[1]) & (cz > lo[2]) & (cz < hi[2]))
    masks = {"kidney_left": _ct_grid_image(sphere), "tumour_1": coarse}
    path = tmp_path / "seg.dcm"
    write_dicom_seg(masks, _ct_series(tmp_path), path)
    seg = hd.seg.segread(str(path))
    assert seg.SegmentationType == "BINARY"
    labels = {seg.get_segment_description(n).segment_label: n for n in seg.get_segment_numbers()}
    assert set(labels) == {"kidney_left", "tumour_1"}
    left = seg.get_segment_description(labels["kidney_left"])
    assert left.segmented_property_type.value == "18639004"
    assert left.algorithm_type.value == "SEMIAUTOMATIC"
    assert left.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "startnet segmentation"
    tumour = seg.get_segment_description(labels["tumour_1"])
    assert tumour.segmented_property_category.value == "49755003"
    volume = seg.get_volume(combine_segments=False)
    array = volume.array  # (slices, rows, columns, segments) on the stored frames
    assert int(array[..., labels["kidney_left"] - 1].sum()) == int(sphere.sum())
    assert int(array[..., labels["tumour_1"] - 1].sum()) == int(box_truth.sum()) > 0


def test_overlapping_structures_and_manual_type(tmp_path):
    cx, cy, cz = _ct_centres()
    liver = (np.abs(cx) < 15) & (np.abs(cy) < 10) & (np.abs(cz - 112) < 7)
    tumour = ((cx - 3) ** 2 + cy ** 2 + (cz - 112) ** 2) <= 5.0 ** 2
    assert (liver & tumour).any()
    path = tmp_path / "seg.dcm"
    write_dicom_seg({"liver": _ct_grid_image(liver), "tumour": _ct_grid_image(tumour)}, _ct_series(), path,
                    algorithm_type="MANUAL", colours={"liver": (1.0, 0.5, 0.4)})
    seg = hd.seg.segread(str(path))
    array = seg.get_volume(combine_segments=False).array
    assert int(array[..., 0].sum()) == int(liver.sum()) and int(array[..., 1].sum()) == int(tumour.sum())
    description = seg.get_segment_description(1)
    assert description.algorithm_type.value == "MANUAL"
    assert "SegmentationAlgorithmIdentificationSequence" not in description
    assert seg.get_segment_description(1).segmented_property_type.value == "10200004"


def test_codes_from_names():
    assert structure_codes("kidney_right")[1].value == "9846003"
    assert structure_codes("Kidney")[1].value == "64033007"
    assert structure_codes("spleen")[1].value == "78961009"
    assert structure_codes("liver_metastasis_2")[1].value == "14799000"
    assert structure_codes("gizmo")[0].value == "85756007"


def test_refuses_empty_or_non_overlapping(tmp_path):
    with pytest.raises(InputError):
        write_dicom_seg({}, _ct_series(), tmp_path / "a.dcm")
    far = sitk.Image(4, 4, 4, sitk.sitkUInt8) + 1
    far.SetOrigin((500.0, 500.0, 500.0))
    with pytest.raises(GeometryError, match="does not overlap"):
        write_dicom_seg({"kidney_left": far}, _ct_series(), tmp_path / "b.dcm")
    assert not (tmp_path / "b.dcm").exists()
    with pytest.raises(DicomInputError, match="cannot read"):
        write_dicom_seg({"kidney_left": far}, [tmp_path / "missing.dcm"], tmp_path / "c.dcm")
    multi = _ct_series()[0]
    multi.NumberOfFrames = 3
    with pytest.raises(DicomInputError, match="single-frame"):
        write_dicom_seg({"kidney_left": far}, [multi], tmp_path / "d.dcm")
    with pytest.raises(InputError, match="algorithm type"):
        write_dicom_seg({"kidney_left": _ct_grid_image(np.ones((N_SLICES, ROWS, COLS)))}, _ct_series(),
                        tmp_path / "e.dcm", algorithm_type="GUESSED")


def test_reads_ct_files_and_frame_positions(tmp_path):
    # Files given as paths, in shuffled order: frames must still land on the right slices.
    paths = _ct_series(tmp_path)
    rng = np.random.default_rng(3)
    shuffled = [paths[i] for i in rng.permutation(len(paths))]
    truth = np.zeros((N_SLICES, ROWS, COLS), dtype=bool)
    truth[6, 3:9, 4:7] = True
    write_dicom_seg({"spleen": _ct_grid_image(truth)}, shuffled, tmp_path / "seg.dcm")
    seg = hd.seg.segread(str(tmp_path / "seg.dcm"))
    assert int(seg.NumberOfFrames) == 1
    position = [float(v) for v in seg.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
                .ImagePositionPatient]
    assert np.allclose(position, (ORIGIN[0], ORIGIN[1], ORIGIN[2] + 6 * SLICE_MM))
    ct_at_6 = pydicom.dcmread(paths[6])
    referenced = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert referenced.ReferencedSOPInstanceUID == ct_at_6.SOPInstanceUID
    assert int(seg.get_volume().array.sum()) == 18


def test_unevenly_spaced_ct_series(tmp_path):
    # One CT slice missing (a 6 mm gap): resampling goes slice by slice and each kept slice still
    # receives exactly its own plane of the mask.
    cx, cy, cz = _ct_centres()
    sphere = ((cx - 2) ** 2 + (cy - 4) ** 2 + (cz - 113) ** 2) <= 8.0 ** 2
    series = _ct_series()
    del series[4]
    write_dicom_seg({"tumour": _ct_grid_image(sphere)}, series, tmp_path / "seg.dcm")
    seg = hd.seg.segread(str(tmp_path / "seg.dcm"))
    per_frame = {}
    for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, seg.pixel_array.reshape(-1, ROWS, COLS)):
        z = float(item.PlanePositionSequence[0].ImagePositionPatient[2])
        per_frame[int(round((z - ORIGIN[2]) / SLICE_MM))] = int(frame.sum())
    assert 4 not in per_frame and sphere[4].sum() > 0
    assert per_frame == {k: int(sphere[k].sum()) for k in range(N_SLICES) if k != 4 and sphere[k].any()}


def test_display_colour_conversion_matches_published_cielab():
    # Reference values (sRGB, D65): white L*=100, a*=b*=0; pure red L*=53.24, a*=80.09, b*=67.20;
    # pure blue L*=32.30, a*=79.19, b*=-107.86.
    assert np.allclose(rgb_to_cielab((255, 255, 255)), (100.0, 0.0, 0.0), atol=0.05)
    assert np.allclose(rgb_to_cielab((255, 0, 0)), (53.24, 80.09, 67.20), atol=0.1)
    assert np.allclose(rgb_to_cielab((0.0, 0.0, 1.0)), (32.30, 79.19, -107.86), atol=0.1)
    assert rgb_to_cielab((0, 0, 0)) == (0.0, 0.0, 0.0)
