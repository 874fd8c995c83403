"""Enhanced (multi-frame) CT: one file, geometry and rescale in the functional groups.

Enhanced CT Image Storage (1.2.840.10008.5.1.4.1.1.2.1) and its legacy-converted form
(1.2.840.10008.5.1.4.1.1.2.2) carry, per frame or shared: Plane Position Sequence (0020,9113)
ImagePositionPatient, Plane Orientation Sequence (0020,9116) ImageOrientationPatient, Pixel
Measures Sequence (0028,9110) PixelSpacing/SliceThickness and Pixel Value Transformation
Sequence (0028,9145) RescaleSlope/Intercept. Frames are sorted along the normal with the same
stack checks as one-file-per-slice series (gaps, duplicates, shear).
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from startnet.dicomio.geometry import as_floats, order_positions, orientation
from startnet.dicomio.pixels import read_frames
from startnet.errors import DicomInputError

ENHANCED_CT_SOPS = ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")
_SEQ_TAGS = {
    "PlanePositionSequence": "(0020,9113)", "PlaneOrientationSequence": "(0020,9116)",
    "PixelMeasuresSequence": "(0028,9110)", "PixelValueTransformationSequence": "(0028,9145)",
}


def _item(frame_item, shared, name: str):
    for holder in (frame_item, shared):
        seq = getattr(holder, name, None) if holder is not None else None
        if seq:
            return seq[0]
    return None


def _required(item, keyword: str, tag: str, sequence: str, where: str):
    value = getattr(item, keyword, None) if item is not None else None
    if value in (None, ""):
        raise DicomInputError(f"{where}: {keyword} {tag} is missing in {sequence} {_SEQ_TAGS[sequence]} "
                              "(per-frame or shared functional groups)")
    return value


def load_enhanced_ct(ds, path: str, label: str, warnings: List[str]) -> sitk.Image:
    """HU volume (int16 when the rescale is integral and fits, else float32) of an enhanced CT."""
    frames = read_frames(ds, path)
    n = frames.shape[0]
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if not per_frame or len(per_frame) != n:
        raise DicomInputError(f"{path}: Per-frame Functional Groups Sequence (5200,9230) has "
                              f"{len(per_frame) if per_frame else 0} items, expected NumberOfFrames {n}")
    shared_seq = getattr(ds, "SharedFunctionalGroupsSequence", None)
    shared = shared_seq[0] if shared_seq else None
    positions = np.empty((n, 3))
    slopes, intercepts = np.ones(n), np.zeros(n)
    parsed: Dict[int, object] = {}
    axes = spacing = thickness = None
    for i, frame_item in enumerate(per_frame):
        where = f"{path} frame {i + 1}"
        pos = _item(frame_item, shared, "PlanePositionSequence")
        ipp = _required(pos, "ImagePositionPatient", "(0020,0032)", "PlanePositionSequence", where)
        positions[i] = as_floats(ipp, 3, where, "ImagePositionPatient (0020,0032)")
        ori = _item(frame_item, shared, "PlaneOrientationSequence")
        if id(ori) not in parsed:
            iop = _required(ori, "ImageOrientationPatient", "(0020,0037)", "PlaneOrientationSequence", where)
            parsed[id(ori)] = orientation(iop, where, "ImageOrientationPatient (0020,0037)")
        frame_axes = parsed[id(ori)]
        meas = _item(frame_item, shared, "PixelMeasuresSequence")
        key = ("meas", id(meas))
        if key not in parsed:
            ps = as_floats(_required(meas, "PixelSpacing", "(0028,0030)", "PixelMeasuresSequence", where), 2, where,
                         "PixelSpacing (0028,0030)")
            parsed[key] = ((float(ps[1]), float(ps[0])), getattr(meas, "SliceThickness", None))
        frame_spacing, frame_thickness = parsed[key]
        if axes is None:
            axes, spacing, thickness = frame_axes, frame_spacing, frame_thickness
        elif np.abs(frame_axes[0] - axes[0]).max() > 1e-3 or np.abs(frame_axes[1] - axes[1]).max() > 1e-3:
            raise DicomInputError(f"{where}: ImageOrientationPatient (0020,0037) differs from frame 1 in {label}")
        elif frame_spacing != spacing:
            raise DicomInputError(f"{where}: PixelSpacing (0028,0030) differs from frame 1 in {label}")
        pvt = _item(frame_item, shared, "PixelValueTransformationSequence")
        holder = pvt if pvt is not None else ds
        slopes[i] = float(getattr(holder, "RescaleSlope", 1.0) or 1.0)
        intercepts[i] = float(getattr(holder, "RescaleIntercept", 0.0) or 0.0)
    names = [f"{path} frame {i + 1}" for i in range(n)]
    order, grid = order_positions(positions, axes, spacing, names, label, warnings, thickness)
    return grid.image(_to_hu(frames[order], slopes[order], intercepts[order]))


def _to_hu(stored: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    if np.all(slopes == 1.0) and np.all(intercepts == np.round(intercepts)):
        hu = stored.astype(np.int32) + intercepts.astype(np.int32)[:, None, None]
        if hu.size == 0 or (hu.min() >= -32768 and hu.max() <= 32767):
            return hu.astype(np.int16)
    return (stored.astype(np.float32) * slopes.astype(np.float32)[:, None, None]
            + intercepts.astype(np.float32)[:, None, None])


def is_enhanced_ct(sop_class_uid: str) -> bool:
    return sop_class_uid in ENHANCED_CT_SOPS


def single_multiframe(headers, files) -> Optional[object]:
    """The dataset of a series made of one multi-frame file, else None."""
    if len(files) == 1 and int(getattr(headers[0], "NumberOfFrames", 1) or 1) > 1:
        return headers[0]
    return None
