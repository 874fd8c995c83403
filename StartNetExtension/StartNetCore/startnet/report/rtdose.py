"""DICOM RT Dose export of an absorbed-dose map (SOP Class 1.2.840.10008.5.1.4.1.1.481.2).

The dose volume is written as one multi-frame instance in the CT's Frame of Reference, so that
SlicerRT (and any TPS) overlays it on the CT it was computed on.

Dose Summation Type (3004,000A) -- why "RECORD":
The RT Dose Module's defined terms (PS3.3 C.8.8.3) are PLAN, MULTI_PLAN, PLAN_OVERVIEW,
FRACTION, BEAM, BRACHY, FRACTION_SESSION, BEAM_SESSION, BRACHY_SESSION, CONTROL_POINT and
RECORD. All but PLAN_OVERVIEW and RECORD make the Referenced RT Plan Sequence (300C,0002)
required, and a radionuclide therapy has no RT Plan to reference; inventing one would be a lie.
PLAN_OVERVIEW describes dose belonging to an RT Plan Overview (again a planning object). RECORD
means dose calculated from what was actually delivered, which is exactly what post-therapy
SPECT/CT dosimetry is: the absorbed dose delivered by one administered cycle, reconstructed from
measured activity. So "RECORD" is used by default and the plan reference is omitted. A caller
may pass another term; terms that need a plan reference are refused.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from startnet import __version__
from startnet.errors import GeometryError, InputError
from startnet.report.dicomfile import save_dataset_atomically

RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
DEFAULT_DOSE_SUMMATION_TYPE = "RECORD"
_NEEDS_PLAN = {"PLAN", "MULTI_PLAN", "FRACTION", "BEAM", "BRACHY", "FRACTION_SESSION",
               "BEAM_SESSION", "BRACHY_SESSION", "CONTROL_POINT"}
_MAX_UINT32 = 4294967295
# Largest stored value: slightly below 2^32 - 1 so that rounding DoseGridScaling to the
# 10 significant digits a DS holds can never push the maximum dose out of range.
_TOP_STORED = 4294000000
_COPIED = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
           "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
           "StudyDescription", "FrameOfReferenceUID", "PositionReferenceIndicator",
           "PatientIdentityRemoved", "DeidentificationMethod")
_TYPE2_EMPTY = ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
                "AccessionNumber", "ReferringPhysicianName", "PositionReferenceIndicator")
_REQUIRED = ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID")


def _ds(value: float) -> str:
    """A Decimal String (<= 16 characters) for ``value``."""
    for digits in (10, 8, 6):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.4e}"


def _reference_value(reference: Union[Mapping, Dataset], keyword: str):
    if isinstance(reference, Dataset):
        return reference.get(keyword, None)
    return reference.get(keyword)


def _slice_geometry(image: sitk.Image):
    """Image orientation, first-frame origin and the z flip needed for positive frame offsets."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    row_dir, col_dir, slice_dir = direction[:, 0], direction[:, 1], direction[:, 2]
    normal = np.cross(row_dir, col_dir)
    cosine = float(np.dot(normal, slice_dir))
    if abs(abs(cosine) - 1.0) > 1e-4:
        raise GeometryError("RT Dose export: the dose image's slice axis is not perpendicular to its "
                            f"rows and columns (direction {image.GetDirection()}); resample it first")
    flip = cosine < 0
    size = image.GetSize()
    first = (0, 0, size[2] - 1) if flip else (0, 0, 0)
    origin = image.TransformIndexToPhysicalPoint(first)
    return row_dir, col_dir, origin, flip


def write_rtdose(dose_gy_image: sitk.Image, path: Union[str, Path], *,
                 reference: Union[Mapping, Dataset], series_description: str = "START-NET absorbed dose",
                 dose_summation_type: str = DEFAULT_DOSE_SUMMATION_TYPE,
                 dose_comment: Optional[str] = None, series_number: int = 901,
                 tissue_heterogeneity_correction: Optional[str] = None) -> Dataset:
    """Write ``dose_gy_image`` (SimpleITK, LPS, Gy) as a DICOM RT Dose file at ``path``.

    ``reference`` is the reference CT (pydicom Dataset, or a mapping of DICOM keywords) whose
    patient, study and Frame of Reference the dose belongs to; PatientID, StudyInstanceUID and
    FrameOfReferenceUID are required. ``tissue_heterogeneity_correction`` may be "IMAGE" (CT
    density used, e.g. density-corrected voxel S-values) or "WATER". Returns the dataset written.
    """
    if not isinstance(dose_gy_image, sitk.Image) or dose_gy_image.GetDimension() != 3:
        raise InputError("RT Dose export: the dose must be a 3-D SimpleITK image")
    if dose_gy_image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("RT Dose export: the dose image must be scalar")
    if dose_gy_image.GetSize()[2] < 2:
        raise GeometryError("RT Dose export: the dose image has a single slice; the RT Dose Grid Frame Offset "
                            "Vector needs at least two frames")
    summation = str(dose_summation_type).upper()
    if summation in _NEEDS_PLAN:
        raise InputError(f"RT Dose export: Dose Summation Type {summation} requires a Referenced RT Plan "
                         "Sequence, and a radionuclide therapy has no RT Plan; use RECORD")
    for keyword in _REQUIRED:
        if not _reference_value(reference, keyword):
            raise InputError(f"RT Dose export: the reference CT lacks {keyword}; the dose must carry the "
                             "CT's patient, study and Frame of Reference")

    dose = sitk.GetArrayFromImage(dose_gy_image).astype(np.float64)  # (z, y, x), a private copy
    top, low = float(dose.max()), float(dose.min())  # NaN and inf propagate into these
    if not (np.isfinite(top) and np.isfinite(low)):
        raise InputError("RT Dose export: the dose map contains NaN or infinite values")
    if low < -1e-6 * max(top, 1e-12):
        raise InputError(f"RT Dose export: the dose map has negative values (min {low:.4g} Gy); "
                         "RT Dose stores non-negative physical dose")
    row_dir, col_dir, origin, flip = _slice_geometry(dose_gy_image)
    if flip:
        dose = dose[::-1]
    scaling_text = _ds(top / _TOP_STORED) if top > 0 else "1"
    scaling = float(scaling_text)
    # In place: clip rounding noise below zero, scale, round, bound (float64 keeps every step exact
    # to well below half a stored unit).
    np.maximum(dose, 0.0, out=dose)
    np.divide(dose, scaling, out=dose)
    np.rint(dose, out=dose)
    np.minimum(dose, _MAX_UINT32, out=dose)
    stored = np.ascontiguousarray(dose).astype("<u4")

    spacing = dose_gy_image.GetSpacing()
    n_frames = dose.shape[0]
    now = _dt.datetime.now()
    ds = Dataset()
    for keyword in _COPIED:
        value = _reference_value(reference, keyword)
        if value not in (None, ""):
            setattr(ds, keyword, value)
        elif keyword in _TYPE2_EMPTY:
            setattr(ds, keyword, "")
    ds.SOPClassUID = RT_DOSE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "RTDOSE"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = series_description[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = "START-NET"
    ds.ManufacturerModelName = "startnet"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.SpecificCharacterSet = "ISO_IR 192"
    # Image Plane
    ds.ImagePositionPatient = [_ds(v) for v in origin]
    ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
    ds.SliceThickness = _ds(spacing[2])
    # Image Pixel + Multi-frame
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(dose.shape[1]), int(dose.shape[2])
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = n_frames
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x3004, 0x000C)
    # RT Dose
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = summation
    ds.GridFrameOffsetVector = [_ds(k * spacing[2]) for k in range(n_frames)]
    ds.DoseGridScaling = scaling_text
    if dose_comment:
        ds.DoseComment = dose_comment[:10240]
    if tissue_heterogeneity_correction:
        ds.TissueHeterogeneityCorrection = tissue_heterogeneity_correction
    ds.PixelData = stored.tobytes()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    save_dataset_atomically(ds, Path(path))
    return ds
