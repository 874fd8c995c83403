"""Write the phantom's time points as a clinic's PACS would send them (pydicom, standard IODs).

Per time point (one study per visit, patient shared):
- a CT series, one file per slice, CT Image Storage (1.2.840.10008.5.1.4.1.1.2), stored
  unsigned with RescaleIntercept -1024 / RescaleSlope 1 (HU), files without extension;
- one NM Image Storage (1.2.840.10008.5.1.4.1.1.20) multi-frame SPECT reconstruction: ImageType
  ORIGINAL\\PRIMARY\\RECON TOMO\\EMISSION, frames along the slice normal, geometry in the Detector
  Information Sequence, FrameIncrementPointer = SliceVector; Units BQML (uint16 + RescaleSlope and
  an equivalent Real World Value Mapping, DecayCorrection START) or CNTS (uint16 counts,
  DecayCorrection NONE);
- CT and SPECT of one visit share the Frame of Reference UID.

Timing: DICOM DA/TM are Swedish local time with TimezoneOffsetFromUTC of the acquisition
(+0100/+0200). RadiopharmaceuticalStartDateTime carries its own offset suffix (e.g.
``20250512093000.000000+0200``); RadiopharmaceuticalStartTime is the local clock time of the
injection (what was recorded at the injection). RadionuclideTotalDose is in MBq as the NM Isotope
Module defines it (C.8.4.10.1.7; PET uses Bq), unless ``radionuclide_total_dose_units`` = "Bq".
The acquisition time T is given where the NM IOD puts it for RECON TOMO: the Rotation Information
Sequence (ActualFrameDuration per view x NumberOfFramesInRotation); the top-level
ActualFrameDuration is absent (Type 1C, only for STATIC/WHOLE BODY; dciodvfy flags it otherwise).
Counts relate to activity at the acquisition start by N = CF A (1 - exp(-lambda T)) / lambda.
Units, DecayCorrection, RescaleSlope/Intercept, RadionuclideHalfLife and
RadiopharmaceuticalStartDateTime are standard attributes outside the NM IOD (Standard Extended
SOP Class, as vendors write them); dciodvfy reports no errors for the files written here.
UIDs are derived deterministically from the patient id and seed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import List, Tuple

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from startnet import __version__
from startnet.phantom.config import format_utc_offset, to_swedish_local
from startnet.physics.lu177 import LU177

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
MANUFACTURER = "START-NET"
MODEL = "Digital Phantom SPECT/CT"
ENERGY_WINDOW_KEV = (208.366 * 0.9, 208.366 * 1.1)


def uid(*parts: object) -> str:
    """Deterministic UID (2.25 form) from the given parts."""
    return generate_uid(prefix=None, entropy_srcs=[str(p) for p in parts])


def _da_tm(moment: datetime) -> Tuple[str, str, str]:
    local = to_swedish_local(moment)
    return local.strftime("%Y%m%d"), local.strftime("%H%M%S.%f"), format_utc_offset(local.utcoffset())


def _ds_text(value: float) -> str:
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8g}"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _base(phantom, tp, study_uid: str, series_uid: str, frame_uid: str, modality: str, sop_class: str,
          sop_uid: str, series_number: int, series_description: str, acquired: datetime) -> Dataset:
    config = phantom.config
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = "STARTNET_PH"
    study_dt = phantom.injection_datetime + timedelta(hours=tp.hours_post_injection)
    study_da, study_tm, _ = _da_tm(study_dt)
    acq_da, acq_tm, offset = _da_tm(acquired)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.TimezoneOffsetFromUTC = offset
    ds.StudyDate, ds.StudyTime = study_da, study_tm
    ds.SeriesDate, ds.SeriesTime = acq_da, acq_tm
    ds.AcquisitionDate, ds.AcquisitionTime = acq_da, acq_tm
    ds.ContentDate, ds.ContentTime = acq_da, acq_tm
    ds.AccessionNumber = f"PH{config.seed % 10000:04d}{tp.index + 1:02d}"
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL
    ds.SoftwareVersions = f"startnet {__version__}"
    ds.InstitutionName = config.institution_name
    ds.StationName = "PHANTOM01"
    ds.DeviceSerialNumber = config.device_serial_number
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = f"177Lu-DOTATOC SPECT/CT {tp.hours_post_injection:g}h p.i."
    ds.SeriesDescription = series_description
    ds.PatientName = config.patient_name
    ds.PatientID = config.patient_id
    ds.PatientBirthDate = config.patient_birth_date
    ds.PatientSex = config.patient_sex
    ds.PatientWeight = "78"
    ds.PatientSize = "1.78"
    ds.BodyPartExamined = "ABDOMEN"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = f"{tp.index + 1}"
    ds.SeriesNumber = series_number
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    return ds


def _write(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:  # pydicom 2.4 (Slicer 5.8, Python 3.9) has no enforce_file_format
        ds.save_as(path, write_like_original=False)


def write_ct_series(phantom, tp, folder: Path, study_uid: str, frame_uid: str) -> List[Path]:
    """One CT Image Storage file per axial slice; returns the paths in slice order."""
    config = phantom.config
    image = tp.ct_hu
    array = sitk.GetArrayViewFromImage(image)
    origin = np.asarray(image.GetOrigin())
    spacing = image.GetSpacing()
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    series_uid = uid(config.patient_id, config.uid_key, tp.index, "ct-series")
    acquired = tp.acquisition_datetime + timedelta(seconds=config.acquisition_time_s + 60.0)
    # One dataset reused for every slice (only per-slice attributes change): it is written out
    # before the next slice's values are set.
    ds = _base(phantom, tp, study_uid, series_uid, frame_uid, "CT", CT_IMAGE_STORAGE, "", 2,
               f"CT low dose {spacing[2]:g} mm B31s", acquired)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionNumber = 1
    ds.KVP = "130"
    ds.XRayTubeCurrent = 30
    ds.ConvolutionKernel = "B31s"
    ds.SliceThickness = _ds_text(spacing[2])
    ds.ImageOrientationPatient = [_ds_text(v) for v in direction[:, 0]] + [_ds_text(v) for v in direction[:, 1]]
    ds.PixelSpacing = [_ds_text(spacing[1]), _ds_text(spacing[0])]  # row spacing (y), column spacing (x)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(array.shape[1]), int(array.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    paths = []
    for k in range(array.shape[0]):
        sop_uid = uid(config.patient_id, config.uid_key, tp.index, "ct", k)
        position = origin + direction @ np.array([0.0, 0.0, spacing[2] * k])
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds_text(v) for v in position]
        ds.SliceLocation = _ds_text(position[2])
        ds.PixelData = (np.clip(array[k].astype(np.int32), -1024, 3071) + 1024).astype(np.uint16).tobytes()
        path = folder / f"IM{k + 1:06d}"
        _write(ds, path)
        paths.append(path)
    return paths


def _nm_pixels(phantom, tp) -> Tuple[np.ndarray, dict]:
    """Stored uint16 frames and the attributes that give them meaning."""
    config = phantom.config
    if config.units == "counts":
        return sitk.GetArrayFromImage(tp.counts).astype(np.uint16), {"Units": "CNTS", "DecayCorrection": "NONE"}
    values = sitk.GetArrayViewFromImage(tp.spect_bqml).astype(np.float64)
    peak = float(values.max()) if values.size else 0.0
    slope = float(_ds_text(peak / 60000.0 if peak > 0 else 1.0))
    stored = np.clip(np.rint(values / slope), 0, 65535).astype(np.uint16)
    return stored, {"Units": "BQML", "DecayCorrection": "START", "slope": slope}


def write_nm_spect(phantom, tp, path: Path, study_uid: str, frame_uid: str) -> Path:
    """One NM multi-frame SPECT reconstruction file for time point ``tp``."""
    config = phantom.config
    image = tp.counts if config.units == "counts" else tp.spect_bqml
    stored, meaning = _nm_pixels(phantom, tp)
    origin = np.asarray(image.GetOrigin())
    spacing = image.GetSpacing()
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    series_uid = uid(config.patient_id, config.uid_key, tp.index, "nm-series")
    sop_uid = uid(config.patient_id, config.uid_key, tp.index, "nm")
    ds = _base(phantom, tp, study_uid, series_uid, frame_uid, "NM", NM_IMAGE_STORAGE, sop_uid, 3,
               "SPECT Lu177 OSEM 3D RR AC SC", tp.acquisition_datetime)
    n_frames = int(stored.shape[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.InstanceNumber = 1
    ds.NumberOfFrames = n_frames
    ds.FrameIncrementPointer = (0x0054, 0x0080)  # Slice Vector
    ds.SliceVector = list(range(1, n_frames + 1))
    ds.NumberOfSlices = n_frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [_ds_text(spacing[1]), _ds_text(spacing[0])]
    ds.SliceThickness = _ds_text(spacing[2])
    ds.SpacingBetweenSlices = _ds_text(spacing[2])
    ds.Units = meaning["Units"]
    ds.DecayCorrection = meaning["DecayCorrection"]
    ds.CorrectedImage = ["ATTN", "SCAT", "DECY"] if meaning["Units"] == "BQML" else ["ATTN", "SCAT"]
    if "slope" in meaning:
        ds.RescaleSlope = _ds_text(meaning["slope"])
        ds.RescaleIntercept = "0"
        rwvm = Dataset()
        rwvm.RealWorldValueFirstValueMapped = 0
        rwvm.RealWorldValueLastValueMapped = 65535
        rwvm.RealWorldValueIntercept = 0.0
        rwvm.RealWorldValueSlope = meaning["slope"]
        rwvm.LUTExplanation = "Bq/ml"
        rwvm.LUTLabel = "BQML"
        rwvm.MeasurementUnitsCodeSequence = Sequence([_code("Bq/ml", "UCUM", "becquerels/milliliter")])
        ds.RealWorldValueMappingSequence = Sequence([rwvm])
    total_counts = (float(sitk.GetArrayViewFromImage(tp.spect_bqml).sum()) * config.spect_grid.voxel_volume_ml
                    * 1.0e-6 * tp.counts_per_mbq)
    ds.CountsAccumulated = int(min(2**31 - 1, round(total_counts)))
    ds.ReconstructionMethod = "OSEM3D 4i8s"
    ds.ConvolutionKernel = "Gauss 0"

    detector = Dataset()
    detector.ImagePositionPatient = [_ds_text(v) for v in origin]
    detector.ImageOrientationPatient = [_ds_text(v) for v in direction[:, 0]] + [_ds_text(v) for v in direction[:, 1]]
    detector.CollimatorGridName = "MELP"
    detector.CollimatorType = "PARA"
    detector.FieldOfViewShape = "RECTANGLE"
    detector.FieldOfViewDimensions = [533, 387]
    detector.FocalDistance = [0]
    detector.ZoomFactor = ["1", "1"]
    ds.DetectorInformationSequence = Sequence([detector])
    ds.NumberOfDetectors = 1

    rotation = Dataset()
    rotation.StartAngle = "0"
    rotation.AngularStep = _ds_text(180.0 / config.projections_per_head)
    rotation.RotationDirection = "CW"
    rotation.ScanArc = "180"
    rotation.ActualFrameDuration = config.view_duration_ms
    rotation.NumberOfFramesInRotation = config.projections_per_head
    ds.RotationInformationSequence = Sequence([rotation])
    ds.NumberOfRotations = 1

    set_energy_window(ds, "Lu177_208keV", ENERGY_WINDOW_KEV)

    ds.RadiopharmaceuticalInformationSequence = Sequence([_radiopharmaceutical(phantom)])
    orientation = _code("102538003", "SCT", "recumbent")
    orientation.PatientOrientationModifierCodeSequence = Sequence([_code("40199007", "SCT", "supine")])
    ds.PatientOrientationCodeSequence = Sequence([orientation])
    del ds.PatientPosition  # NM: patient orientation is coded, PatientPosition shall not be present
    ds.PatientGantryRelationshipCodeSequence = Sequence([_code("102540008", "SCT", "headfirst")])
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    _write(ds, path)
    return path


def set_energy_window(ds: Dataset, name: str, range_kev) -> None:
    """One energy window (name, lower and upper limit in keV) as the NM header's only window."""
    window = Dataset()
    window_range = Dataset()
    window_range.EnergyWindowLowerLimit = _ds_text(range_kev[0])
    window_range.EnergyWindowUpperLimit = _ds_text(range_kev[1])
    window.EnergyWindowRangeSequence = Sequence([window_range])
    window.EnergyWindowName = name
    ds.EnergyWindowInformationSequence = Sequence([window])
    ds.NumberOfEnergyWindows = 1


def _radiopharmaceutical(phantom) -> Dataset:
    config = phantom.config
    injection_local = to_swedish_local(phantom.injection_datetime)
    item = Dataset()
    item.Radiopharmaceutical = "Lu177-DOTATOC"
    item.RadiopharmaceuticalStartTime = injection_local.strftime("%H%M%S.%f")
    item.RadiopharmaceuticalStartDateTime = (injection_local.strftime("%Y%m%d%H%M%S.%f")
                                             + format_utc_offset(injection_local.utcoffset()))
    dose = config.injected_activity_mbq * (1.0e6 if config.radionuclide_total_dose_units == "Bq" else 1.0)
    item.RadionuclideTotalDose = _ds_text(dose)
    item.RadionuclideHalfLife = _ds_text(LU177.half_life_s)
    item.RadionuclideCodeSequence = Sequence([_code(LU177.snomed_code, "SCT", "^177^Lutetium")])
    item.AdministrationRouteCodeSequence = Sequence([_code("47625008", "SCT", "Intravenous route")])
    return item
