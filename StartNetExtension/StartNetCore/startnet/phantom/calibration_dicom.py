"""Write a calibration scan (:mod:`startnet.phantom.calibration_scans`) as a clinic's camera would.

``write_calibration_scan(scan, out_dir)`` writes::

    DICOM/NM000001.dcm   NM Image Storage multi-frame SPECT reconstruction (RECON TOMO), no CT
    truth.json           the scan's ground truth (camera, PSF, sensitivity, activity, spheres' RC)
    SPHERES.json         sphere scans only: the ``startnet calibrate recovery`` input

The header carries the camera's identity where scanners put it: Manufacturer (0008,0070),
ManufacturerModelName (0008,1090), DeviceSerialNumber (0018,1000), the collimator in the Detector
Information Sequence (0054,0022), energy windows in the Energy Window Information Sequence
(0054,0012), ReconstructionMethod (0054,1103, e.g. ``OSEM3D 4i8s``), ConvolutionKernel (the
post-filter) and CorrectedImage (0028,0051). The source's measured activity and its time are the
Radiopharmaceutical Information Sequence's RadionuclideTotalDose (MBq) and
RadiopharmaceuticalStartDateTime. Timing and units follow :mod:`startnet.phantom.dicom_writer`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from startnet import __version__
from startnet.errors import InputError, OutputError
from startnet.phantom.calibration_scans import CalibrationScan, spheres_json
from startnet.phantom.config import format_utc_offset, to_swedish_local
from startnet.phantom.dicom_writer import NM_IMAGE_STORAGE, _code, _da_tm, _ds_text, _write, uid
from startnet.physics.lu177 import LU177


@dataclass
class CalibrationFiles:
    out_dir: Path
    dicom_dir: Path
    spect_file: Path
    truth_json: Path
    spheres_json: Optional[Path]


def _stored(scan: CalibrationScan):
    grid = scan.config.grid
    if scan.config.units == "counts":
        rounded = np.rint(scan.stored)
        if rounded.max() > 65535:
            raise InputError(f"calibration scan: {rounded.max():.0f} counts in a voxel (> 65535); lower the "
                             "activity or the acquisition time")
        return rounded.astype(np.uint16), {"Units": "CNTS", "DecayCorrection": "NONE"}
    counts_per_bqml = grid.voxel_volume_ml * 1e-6 * scan.counts_per_mbq
    values = scan.stored / counts_per_bqml
    slope = float(_ds_text(max(float(values.max()), 1.0) / 60000.0))
    stored = np.clip(np.rint(values / slope), 0, 65535).astype(np.uint16)
    return stored, {"Units": "BQML", "DecayCorrection": "START", "slope": slope}


def _dataset(scan: CalibrationScan) -> Dataset:
    config, camera = scan.config, scan.config.camera
    key = (camera.serial, config.kind, config.seed, config.units)
    study_uid, series_uid, sop_uid = uid(*key, "study"), uid(*key, "series"), uid(*key, "sop")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = NM_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    da, tm, offset = _da_tm(config.acquisition_datetime)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = NM_IMAGE_STORAGE, sop_uid
    ds.TimezoneOffsetFromUTC = offset
    for prefix in ("Study", "Series", "Acquisition", "Content"):
        setattr(ds, f"{prefix}Date", da)
        setattr(ds, f"{prefix}Time", tm)
    ds.Modality = "NM"
    ds.Manufacturer = camera.manufacturer
    ds.ManufacturerModelName = camera.model
    ds.DeviceSerialNumber = camera.serial
    ds.SoftwareVersions = f"startnet {__version__}"
    ds.InstitutionName = "START-NET Digital Phantom Hospital"
    ds.StationName = "PHANTOM01"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "QC SPECT calibration"
    ds.SeriesDescription = f"{config.kind} Lu177 {camera.reconstruction_text}"
    ds.PatientName, ds.PatientID = "QC^Phantom", f"QC-{config.kind.upper()}"
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 3, 1
    ds.FrameOfReferenceUID = uid(*key, "frame")
    ds.PositionReferenceIndicator = ""
    return ds


def _add_image(ds: Dataset, scan: CalibrationScan) -> None:
    config, camera, grid = scan.config, scan.config.camera, scan.config.grid
    stored, meaning = _stored(scan)
    n = int(stored.shape[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = (0x0054, 0x0080)
    ds.SliceVector = list(range(1, n + 1))
    ds.NumberOfSlices = n
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    sx, sy, sz = grid.spacing_mm
    ds.PixelSpacing = [_ds_text(sy), _ds_text(sx)]
    ds.SliceThickness = ds.SpacingBetweenSlices = _ds_text(sz)
    ds.Units, ds.DecayCorrection = meaning["Units"], meaning["DecayCorrection"]
    ds.CorrectedImage = list(camera.corrections) + (["DECY"] if meaning["Units"] == "BQML" else [])
    if "slope" in meaning:
        ds.RescaleSlope, ds.RescaleIntercept = _ds_text(meaning["slope"]), "0"
    ds.ReconstructionMethod = camera.reconstruction_text
    ds.ConvolutionKernel = camera.filter_name
    detector = Dataset()
    detector.ImagePositionPatient = [_ds_text(v) for v in grid.origin_lps_mm]
    detector.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    detector.CollimatorGridName = camera.collimator
    detector.CollimatorType = camera.collimator_type
    ds.DetectorInformationSequence = Sequence([detector])
    ds.NumberOfDetectors = 1
    rotation = Dataset()
    rotation.StartAngle, rotation.RotationDirection, rotation.ScanArc = "0", "CW", "180"
    rotation.AngularStep = _ds_text(180.0 / config.projections_per_head)
    rotation.ActualFrameDuration = config.view_duration_ms
    rotation.NumberOfFramesInRotation = config.projections_per_head
    ds.RotationInformationSequence = Sequence([rotation])
    ds.NumberOfRotations = 1
    windows = []
    for name, low, high in camera.energy_windows_kev:
        window, limits = Dataset(), Dataset()
        limits.EnergyWindowLowerLimit, limits.EnergyWindowUpperLimit = _ds_text(low), _ds_text(high)
        window.EnergyWindowRangeSequence = Sequence([limits])
        window.EnergyWindowName = name
        windows.append(window)
    ds.EnergyWindowInformationSequence = Sequence(windows)
    ds.NumberOfEnergyWindows = len(windows)
    ds.RadiopharmaceuticalInformationSequence = Sequence([_source(scan)])
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def _source(scan: CalibrationScan) -> Dataset:
    local = to_swedish_local(scan.config.activity_datetime)
    item = Dataset()
    item.Radiopharmaceutical = "Lu177 calibration source"
    item.RadiopharmaceuticalStartTime = local.strftime("%H%M%S.%f")
    item.RadiopharmaceuticalStartDateTime = local.strftime("%Y%m%d%H%M%S.%f") + format_utc_offset(local.utcoffset())
    total = scan.truth.get("activity_mbq")
    if total is None:
        total = scan.truth["activity_at_acquisition_mbq"] / scan.truth["decay_activity_to_acquisition"]
    item.RadionuclideTotalDose = _ds_text(float(total))
    item.RadionuclideHalfLife = _ds_text(LU177.half_life_s)
    item.RadionuclideCodeSequence = Sequence([_code(LU177.snomed_code, "SCT", "^177^Lutetium")])
    return item


def write_calibration_scan(scan: CalibrationScan, out_dir) -> CalibrationFiles:
    """Write the scan's DICOM, truth.json and (sphere scans) SPHERES.json into ``out_dir`` (new or empty)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"write_calibration_scan: cannot create {out}: {exc}") from exc
    if (out / "DICOM").exists() or (out / "truth.json").exists():
        raise OutputError(f"write_calibration_scan: {out} already holds a scan (DICOM/ or truth.json)")
    ds = _dataset(scan)
    _add_image(ds, scan)
    spect = out / "DICOM" / "NM000001.dcm"
    _write(ds, spect)
    truth = dict(scan.truth)
    truth["spect_file"] = str(spect.relative_to(out))
    truth["series_instance_uid"] = str(ds.SeriesInstanceUID)
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    spheres = spheres_json(scan)
    spheres_path = None
    if spheres is not None:
        spheres_path = out / "SPHERES.json"
        spheres_path.write_text(json.dumps(spheres, indent=2) + "\n")
    return CalibrationFiles(out, out / "DICOM", spect, truth_path, spheres_path)
