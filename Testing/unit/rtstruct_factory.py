"""Write small DICOM RT Structure Sets for the tests (pydicom only, standard attributes).

``ellipsoid_contours`` gives the planar contours of an ellipsoid on given slice positions (a
shell is an outer ellipsoid plus an inner one whose contours lie inside: holes). ``mask_contours``
traces a voxel mask slice by slice (marching squares, scikit-image) the way a planning system
exports a drawn structure.
"""

from __future__ import annotations

import datetime as _dt
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from dicom_factory import _save, da, tm
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def ellipsoid_contours(centre_mm: Sequence[float], radii_mm: Sequence[float], z_planes_mm: Sequence[float],
                       points: int = 180) -> List[np.ndarray]:
    """(N x 3) LPS contours of an axis-aligned ellipsoid on the slices it crosses."""
    out = []
    angles = np.linspace(0.0, 2.0 * np.pi, points, endpoint=False)
    for z in z_planes_mm:
        t = (z - centre_mm[2]) / radii_mm[2]
        if abs(t) >= 1.0:
            continue
        scale = np.sqrt(1.0 - t * t)
        x = centre_mm[0] + radii_mm[0] * scale * np.cos(angles)
        y = centre_mm[1] + radii_mm[1] * scale * np.sin(angles)
        out.append(np.column_stack([x, y, np.full_like(x, z)]))
    return out


def ellipsoid_volume_ml(radii_mm: Sequence[float]) -> float:
    return 4.0 / 3.0 * np.pi * float(np.prod(radii_mm)) / 1000.0


def mask_contours(mask_zyx: np.ndarray, image: sitk.Image) -> List[np.ndarray]:
    """Closed LPS contours of a boolean mask on ``image``'s grid, traced at 0.5 on each slice."""
    from skimage.measure import find_contours

    out = []
    for k in range(mask_zyx.shape[0]):
        if not mask_zyx[k].any():
            continue
        padded = np.pad(mask_zyx[k].astype(float), 1)
        for contour in find_contours(padded, 0.5):
            rows, cols = contour[:-1, 0] - 1, contour[:-1, 1] - 1  # closed: last point repeats the first
            points = [image.TransformContinuousIndexToPhysicalPoint((float(c), float(r), float(k)))
                      for r, c in zip(rows, cols)]
            out.append(np.asarray(points))
    return out


def write_rtstruct(path: str, rois: Sequence[Tuple[str, List[np.ndarray]]], *, series_uid: str,
                   frame_of_reference_uid: str, study_uid: Optional[str] = None, patient_id: str = "PHANTOM",
                   colours: Optional[Dict[str, Tuple[int, int, int]]] = None,
                   contour_image_uids: Sequence[str] = ()) -> str:
    """An RT Structure Set with one ROI per (name, contours), referencing CT series ``series_uid``."""
    now = _dt.datetime(2024, 3, 1, 12, 0, 0)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTSTRUCT
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.PatientID = patient_id
    ds.PatientName = "Phantom^Test"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StructureSetLabel = "test"
    ds.StructureSetDate, ds.StructureSetTime = da(now), tm(now)
    images = DicomSequence()
    for uid in contour_image_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE
        item.ReferencedSOPInstanceUID = uid
        images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ContourImageSequence = images
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_of_reference_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    roi_items, contour_items, observations = DicomSequence(), DicomSequence(), DicomSequence()
    for number, (name, contours) in enumerate(rois, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_of_reference_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = list((colours or {}).get(name, (255, 0, 0)))
        sequence = DicomSequence()
        for contour in contours:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(contour)
            c.ContourData = [f"{v:.4f}" for v in np.asarray(contour, float).ravel()]
            sequence.append(c)
        item.ContourSequence = sequence
        contour_items.append(item)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN"
        observation.ROIInterpreter = ""
        observations.append(observation)
    ds.StructureSetROISequence = roi_items
    ds.ROIContourSequence = contour_items
    ds.RTROIObservationsSequence = observations
    return _save(ds, path)
