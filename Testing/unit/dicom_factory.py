"""Build small synthetic DICOM files for the dicomio tests (pydicom only, standard attributes).

Times are naive local wall-clock datetimes (as a scanner writes DA/TM); ``tz_offset`` adds
TimezoneOffsetFromUTC. Each writer returns the path(s) written; ``mutate(ds)`` callbacks let a
test damage or vary one attribute.
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Callable, List, Optional, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

NM_IMAGE = "1.2.840.10008.5.1.4.1.1.20"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
LU177_HALF_LIFE_S = 159.528 * 3600.0
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def da(t: _dt.datetime) -> str:
    return t.strftime("%Y%m%d")


def tm(t: _dt.datetime) -> str:
    return t.strftime("%H%M%S") + (f".{t.microsecond:06d}" if t.microsecond else "")


def _base(sop_class: str, modality: str, study_uid: str, series_uid: str, for_uid: str,
          patient_id: str, acquisition: _dt.datetime, tz_offset: Optional[str]) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = "Phantom^Test"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = da(acquisition)
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = tm(acquisition)
    if tz_offset:
        ds.TimezoneOffsetFromUTC = tz_offset
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    return ds


def _save(ds: Dataset, path: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:  # pydicom 2.x (as bundled with Slicer)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return path


def radiopharm_item(injection: Optional[_dt.datetime], activity_bq: Optional[float] = 7.4e9,
                    half_life_s: Optional[float] = LU177_HALF_LIFE_S, code=("447553000", "^177^Lutetium"),
                    with_datetime: bool = True) -> Dataset:
    item = Dataset()
    item.Radiopharmaceutical = "177Lu-DOTATOC"
    if injection is not None:
        item.RadiopharmaceuticalStartTime = tm(injection)
        if with_datetime:
            item.RadiopharmaceuticalStartDateTime = da(injection) + tm(injection)
    if activity_bq is not None:
        item.RadionuclideTotalDose = f"{activity_bq:.6g}"
    if half_life_s is not None:
        item.RadionuclideHalfLife = f"{half_life_s:.6g}"
    if code is not None:
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = code[0], "SCT", code[1]
        item.RadionuclideCodeSequence = DicomSequence([c])
    return item


def _nm_common(ds: Dataset, injection, activity_bq, units, rescale_slope, frame_duration_ms,
               decay_correction, rwvm_slope, radiopharm: Optional[Dataset]) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.PixelRepresentation = 0
    if units is not None:
        ds.Units = units
    if rescale_slope is not None:
        ds.RescaleSlope = f"{rescale_slope:.10g}"
        ds.RescaleIntercept = "0"
    if decay_correction is not None:
        ds.DecayCorrection = decay_correction
    if frame_duration_ms is not None:
        ds.ActualFrameDuration = int(frame_duration_ms)
    ds.CorrectedImage = ["ATTN", "SCAT"]
    ds.RadiopharmaceuticalInformationSequence = DicomSequence(
        [radiopharm if radiopharm is not None else radiopharm_item(injection, activity_bq)])
    if rwvm_slope is not None:
        item = Dataset()
        item.RealWorldValueFirstValueMapped = 0
        item.RealWorldValueLastValueMapped = 65535
        item.RealWorldValueSlope = float(rwvm_slope)
        item.RealWorldValueIntercept = 0.0
        item.LUTLabel = "BQML"
        unit = Dataset()
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "Bq/ml", "UCUM", "Becquerels/milliliter"
        item.MeasurementUnitsCodeSequence = DicomSequence([unit])
        ds.RealWorldValueMappingSequence = DicomSequence([item])


def write_nm_multiframe(path: str, stored_zyx: np.ndarray, origin_mm: Sequence[float],
                        spacing_mm: Sequence[float], *, acquisition: _dt.datetime,
                        injection: Optional[_dt.datetime], activity_bq: Optional[float] = 7.4e9,
                        units: Optional[str] = "BQML", rescale_slope: Optional[float] = 1.0,
                        frame_duration_ms: Optional[float] = 1200000, decay_correction: Optional[str] = "START",
                        rwvm_slope: Optional[float] = None, orientation=AXIAL, tz_offset: Optional[str] = None,
                        study_uid: Optional[str] = None, series_uid: Optional[str] = None,
                        for_uid: Optional[str] = None, patient_id: str = "P001",
                        radiopharm: Optional[Dataset] = None,
                        mutate: Optional[Callable[[Dataset], None]] = None) -> str:
    """One NM multi-frame SPECT reconstruction (geometry in the Detector Information Sequence)."""
    stored = np.ascontiguousarray(stored_zyx, dtype=np.uint16)
    ds = _base(NM_IMAGE, "NM", study_uid or generate_uid(), series_uid or generate_uid(),
               for_uid or generate_uid(), patient_id, acquisition, tz_offset)
    _nm_common(ds, injection, activity_bq, units, rescale_slope, frame_duration_ms, decay_correction,
               rwvm_slope, radiopharm)
    n, rows, cols = stored.shape
    ds.NumberOfFrames = n
    ds.NumberOfSlices = n
    ds.FrameIncrementPointer = 0x00540080
    ds.SliceVector = list(range(1, n + 1))
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [f"{spacing_mm[1]:.6g}", f"{spacing_mm[0]:.6g}"]
    ds.SpacingBetweenSlices = f"{spacing_mm[2]:.6g}"
    ds.SliceThickness = f"{abs(spacing_mm[2]):.6g}"
    det = Dataset()
    det.ImagePositionPatient = [f"{v:.6g}" for v in origin_mm]
    det.ImageOrientationPatient = [f"{v:.6g}" for v in orientation]
    ds.DetectorInformationSequence = DicomSequence([det])
    ds.SeriesDescription = "SPECT recon"
    ds.PixelData = stored.tobytes()
    if mutate is not None:
        mutate(ds)
    return _save(ds, path)


def write_nm_projections(path: str, counts_wdv: np.ndarray, *, acquisition: _dt.datetime, study_uid: str,
                         view_ms: float = 20000, matrix: int = 4, patient_id: str = "P001",
                         detector_vector: bool = True, counts_accumulated: Optional[int] = None,
                         mutate: Optional[Callable[[Dataset], None]] = None) -> str:
    """NM TOMO projections (ImageType ORIGINAL\\PRIMARY\\TOMO\\EMISSION), one multi-frame file.

    ``counts_wdv[w, d, v]`` is the total count of window w, head d, view v, spread evenly over a
    ``matrix`` x ``matrix`` frame (remainder in the first pixel); frames are ordered by Energy
    Window Vector, Detector Vector, Rotation Vector, Angular View Vector (one rotation).
    """
    counts_wdv = np.asarray(counts_wdv, dtype=np.int64)
    n_w, n_d, n_v = counts_wdv.shape
    frames = np.zeros((n_w * n_d * n_v, matrix, matrix), dtype=np.uint16)
    windows, detectors, views = [], [], []
    k = 0
    for w in range(n_w):
        for d in range(n_d):
            for v in range(n_v):
                total = int(counts_wdv[w, d, v])
                frames[k].fill(total // (matrix * matrix))
                frames[k].flat[0] += total % (matrix * matrix)
                windows.append(w + 1)
                detectors.append(d + 1)
                views.append(v + 1)
                k += 1
    ds = _base(NM_IMAGE, "NM", study_uid, generate_uid(), generate_uid(), patient_id, acquisition, None)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames.shape[0]
    ds.Rows = ds.Columns = matrix
    ds.PixelSpacing = ["4.8", "4.8"]
    ds.NumberOfEnergyWindows = n_w
    ds.NumberOfDetectors = n_d
    ds.NumberOfRotations = 1
    ds.EnergyWindowVector = windows
    if detector_vector:
        ds.DetectorVector = detectors
    ds.RotationVector = [1] * len(views)
    ds.AngularViewVector = views
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    rotation = Dataset()
    rotation.ActualFrameDuration = int(view_ms)
    rotation.NumberOfFramesInRotation = n_v
    ds.RotationInformationSequence = DicomSequence([rotation])
    if counts_accumulated is not None:
        ds.CountsAccumulated = int(counts_accumulated)
    ds.SeriesDescription = "SPECT projections"
    ds.PixelData = frames.tobytes()
    if mutate is not None:
        mutate(ds)
    return _save(ds, path)


def write_nm_single_frames(folder: str, stored_zyx: np.ndarray, origin_mm: Sequence[float],
                           spacing_mm: Sequence[float], *, acquisition: _dt.datetime,
                           injection: Optional[_dt.datetime], activity_bq: Optional[float] = 7.4e9,
                           units: Optional[str] = "BQML", slopes: Optional[Sequence[float]] = None,
                           frame_duration_ms: Optional[float] = 1200000, decay_correction: Optional[str] = "START",
                           tz_offset: Optional[str] = None, study_uid: Optional[str] = None,
                           for_uid: Optional[str] = None, patient_id: str = "P001",
                           shuffle_seed: int = 3) -> List[str]:
    """A SPECT reconstruction stored as one NM file per slice (files written in shuffled order)."""
    stored = np.asarray(stored_zyx, dtype=np.uint16)
    study_uid, series_uid, for_uid = study_uid or generate_uid(), generate_uid(), for_uid or generate_uid()
    n = stored.shape[0]
    order = np.random.default_rng(shuffle_seed).permutation(n)
    paths = []
    for rank, k in enumerate(order):
        ds = _base(NM_IMAGE, "NM", study_uid, series_uid, for_uid, patient_id, acquisition, tz_offset)
        slope = 1.0 if slopes is None else slopes[k]
        _nm_common(ds, injection, activity_bq, units, slope, frame_duration_ms, decay_correction, None, None)
        ds.NumberOfFrames = 1
        ds.Rows, ds.Columns = stored.shape[1:]
        ds.PixelSpacing = [f"{spacing_mm[1]:.6g}", f"{spacing_mm[0]:.6g}"]
        ds.SliceThickness = f"{spacing_mm[2]:.6g}"
        ds.ImagePositionPatient = [f"{origin_mm[0]:.6g}", f"{origin_mm[1]:.6g}",
                                   f"{origin_mm[2] + k * spacing_mm[2]:.6g}"]
        ds.ImageOrientationPatient = [f"{v:.6g}" for v in AXIAL]
        ds.InstanceNumber = int(k) + 1
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        paths.append(_save(ds, os.path.join(folder, f"IM{rank:04d}")))
    return paths


def write_ct_series(folder: str, hu_zyx: np.ndarray, origin_mm: Sequence[float], spacing_mm: Sequence[float], *,
                    acquisition: _dt.datetime, tz_offset: Optional[str] = None, study_uid: Optional[str] = None,
                    for_uid: Optional[str] = None, patient_id: str = "P001", intercept: float = -1024.0,
                    z_positions: Optional[Sequence[float]] = None, extension: str = ".dcm",
                    mutate: Optional[Callable[[int, Dataset], None]] = None) -> List[str]:
    """A CT series, one file per slice, stored as uint16 = HU - intercept."""
    study_uid, series_uid, for_uid = study_uid or generate_uid(), generate_uid(), for_uid or generate_uid()
    stored = np.asarray(np.round(np.asarray(hu_zyx) - intercept), dtype=np.uint16)
    paths = []
    for k in range(stored.shape[0]):
        ds = _base(CT_IMAGE, "CT", study_uid, series_uid, for_uid, patient_id, acquisition, tz_offset)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelRepresentation = 0
        ds.Rows, ds.Columns = stored.shape[1:]
        ds.PixelSpacing = [f"{spacing_mm[1]:.6g}", f"{spacing_mm[0]:.6g}"]
        ds.SliceThickness = f"{spacing_mm[2]:.6g}"
        z = origin_mm[2] + k * spacing_mm[2] if z_positions is None else z_positions[k]
        ds.ImagePositionPatient = [f"{origin_mm[0]:.6g}", f"{origin_mm[1]:.6g}", f"{z:.6g}"]
        ds.ImageOrientationPatient = [f"{v:.6g}" for v in AXIAL]
        ds.RescaleSlope = "1"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = "CT low dose"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        if mutate is not None:
            mutate(k, ds)
        paths.append(_save(ds, os.path.join(folder, f"CT{k:04d}{extension}")))
    return paths


def spect_and_ct(folder: str, stored_zyx: np.ndarray, *, acquisition: _dt.datetime,
                 injection: Optional[_dt.datetime], spect_origin=(-60.0, -60.0, -40.0), spect_spacing=(8.0, 8.0, 8.0),
                 ct_shape=(24, 32, 32), ct_origin=None, ct_spacing=(4.0, 4.0, 4.0), tz_offset=None,
                 patient_id: str = "P001", **nm_kwargs) -> dict:
    """One time point: an NM multi-frame SPECT and a CT covering it, sharing study and FoR."""
    study_uid, for_uid = generate_uid(), generate_uid()
    spect_path = write_nm_multiframe(
        os.path.join(folder, "NM", "spect"), stored_zyx, spect_origin, spect_spacing, acquisition=acquisition,
        injection=injection, tz_offset=tz_offset, study_uid=study_uid, for_uid=for_uid,
        patient_id=patient_id, **nm_kwargs)
    if ct_origin is None:
        ct_origin = (spect_origin[0], spect_origin[1], spect_origin[2] - 2.0)
    hu = np.full(ct_shape, 40.0)
    hu[:, :, :4] = -1000.0
    ct_paths = write_ct_series(os.path.join(folder, "CT"), hu, ct_origin, ct_spacing,
                               acquisition=acquisition - _dt.timedelta(minutes=5), tz_offset=tz_offset,
                               study_uid=study_uid, for_uid=for_uid, patient_id=patient_id)
    return {"spect": spect_path, "ct": ct_paths, "study_uid": study_uid, "for_uid": for_uid}


def write_enhanced_ct(path: str, hu_zyx: np.ndarray, origin_mm: Sequence[float], spacing_mm: Sequence[float], *,
                      acquisition: _dt.datetime, study_uid: str, for_uid: str, patient_id: str = "P001",
                      intercept: float = -1024.0, reverse: bool = True) -> str:
    """One Enhanced CT Image Storage file; frames written from the highest z down when ``reverse``."""
    stored = np.asarray(np.round(np.asarray(hu_zyx) - intercept), dtype=np.uint16)
    order = list(range(stored.shape[0]))[::-1] if reverse else list(range(stored.shape[0]))
    ds = _base("1.2.840.10008.5.1.4.1.1.2.1", "CT", study_uid, generate_uid(), for_uid, patient_id, acquisition, None)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = len(order)
    ds.Rows, ds.Columns = stored.shape[1:]
    shared = Dataset()
    orientation_item = Dataset()
    orientation_item.ImageOrientationPatient = [f"{v:.6g}" for v in AXIAL]
    shared.PlaneOrientationSequence = DicomSequence([orientation_item])
    measures = Dataset()
    measures.PixelSpacing = [f"{spacing_mm[1]:.6g}", f"{spacing_mm[0]:.6g}"]
    measures.SliceThickness = f"{spacing_mm[2]:.6g}"
    shared.PixelMeasuresSequence = DicomSequence([measures])
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = "1", f"{intercept:g}", "HU"
    shared.PixelValueTransformationSequence = DicomSequence([transform])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for k in order:
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [f"{origin_mm[0]:.6g}", f"{origin_mm[1]:.6g}",
                                         f"{origin_mm[2] + k * spacing_mm[2]:.6g}"]
        item.PlanePositionSequence = DicomSequence([position])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = np.ascontiguousarray(stored[order]).tobytes()
    return _save(ds, path)
