"""DICOM RT Structure Set (RTSTRUCT) -> one mask per ROI on the referenced CT's grid.

An RTSTRUCT holds, per ROI, closed planar contours in patient coordinates (LPS, mm), one or more
per CT slice. Each ROI is rasterised onto the CT grid it was drawn on: the contour points are
turned into continuous voxel indices of the grid, each contour is filled in its slice, and the
filled contours of one slice are combined by exclusive-or. A contour inside another contour is
then a hole (ring-shaped ROIs, an organ drawn around a cavity) and separate contours on one slice
(both lungs in one ROI) add up: the even-odd rule, which is how RTSTRUCT readers (SlicerRT,
plastimatch) interpret nested contours.

Library: each contour is filled with ``skimage.draw.polygon`` (scikit-image, maintained; a voxel
is inside when its centre is inside the polygon, by the even-odd crossing rule). ``rt-utils`` was
considered and not chosen: it needs the CT series files on disk (the run has the CT in memory,
Slicer has it as a volume node), it depends on ``opencv-python`` (the GUI build of OpenCV, ~60 MB,
needing system GL libraries on headless machines) and on the ``dataclasses`` backport, which on
Python >= 3.7 installs a module shadowing the standard library's; the rasterisation itself is the
same call (OpenCV ``fillPoly``).

A contour that crosses itself is not refused: it is filled by the same even-odd rule (a bow-tie
gives both lobes) and the ROI's name and slice are reported in a warning, so the user can check it.
Contours that are not CLOSED_PLANAR (points, open lines) enclose nothing and are skipped with a note.

Overlapping ROIs: clinics draw an organ around its lesions (and the body outline around
everything). As in a labelmap, where each voxel has one label, a voxel inside several ROIs is given
to the smallest of them (the lesion is carved out of the organ, the organ out of the body
outline), and every such carve is reported (:attr:`RtStructSegments.notes`).

Names are kept as written in the file; :func:`startnet.segmentation.container.canonical_name`
(applied by ``load_segmentation``) maps them through the alias table (``Kidney_L`` -> ``kidney_left``,
``Lesion 1`` -> ``lesion_1``), unknown names stay as they are.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk

from startnet.errors import GeometryError, InputError

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
# largest distance (in slice spacings) of a contour from the nearest slice plane of the grid
PLANE_TOLERANCE = 0.1
Colour = Tuple[float, float, float]


@dataclass
class RoiContours:
    """One ROI: its number, name, display colour and closed planar contours (N x 3 LPS mm each)."""

    number: int
    name: str
    colour: Optional[Colour]
    contours: List[np.ndarray] = field(default_factory=list)
    skipped: int = 0  # contours that are not CLOSED_PLANAR


@dataclass
class RtStruct:
    path: str
    frame_of_reference_uid: Optional[str]
    referenced_series_uids: List[str]
    rois: List[RoiContours]


@dataclass
class RtStructSegments:
    """(name, mask on the grid cut to the ROI, colour) per ROI, and what was carved or repaired."""

    segments: List[Tuple[str, sitk.Image, Optional[Colour]]]
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def is_rtstruct(path: Union[str, Path]) -> bool:
    """True when ``path`` is a DICOM file with Modality RTSTRUCT (or the RT Structure Set SOP class)."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["Modality", "SOPClassUID"])
    except Exception:  # noqa: BLE001 - not DICOM at all
        return False
    return str(ds.get("Modality", "")) == "RTSTRUCT" or str(ds.get("SOPClassUID", "")) == RTSTRUCT_SOP_CLASS


def read_rtstruct(path: Union[str, Path]) -> RtStruct:
    """ROIs and their contours; InputError naming the file and attribute when the structure set is malformed."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise InputError(f"{path}: cannot read DICOM RTSTRUCT ({type(exc).__name__}: {exc})") from exc
    names: Dict[int, str] = {}
    for item in ds.get("StructureSetROISequence", []):
        names[int(item.ROINumber)] = str(item.get("ROIName", "") or f"roi_{int(item.ROINumber)}").strip()
    if not names:
        raise InputError(f"{path}: RTSTRUCT has no StructureSetROISequence (3006,0020) items; no ROI to read")
    rois: List[RoiContours] = []
    for item in ds.get("ROIContourSequence", []):
        number = int(item.get("ReferencedROINumber", -1))
        if number not in names:
            raise InputError(f"{path}: ROIContourSequence item references ROI number {number}, which "
                             f"StructureSetROISequence does not define (defined: {sorted(names)})")
        colour = None
        if "ROIDisplayColor" in item and len(item.ROIDisplayColor) == 3:
            colour = tuple(float(v) / 255.0 for v in item.ROIDisplayColor)
        roi = RoiContours(number, names[number], colour)
        for contour in item.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                roi.skipped += 1
                continue
            data = np.asarray([float(v) for v in contour.get("ContourData", [])], dtype=float)
            if data.size < 9 or data.size % 3:
                raise InputError(f"{path}: ROI '{roi.name}': ContourData (3006,0050) with {data.size} values; "
                                 "expected x,y,z triplets of at least 3 points")
            roi.contours.append(data.reshape(-1, 3))
        rois.append(roi)
    if not rois:
        raise InputError(f"{path}: RTSTRUCT has no ROIContourSequence (3006,0039); the ROIs have no contours")
    series = []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for item in study.get("RTReferencedSeriesSequence", []):
                if item.get("SeriesInstanceUID"):
                    series.append(str(item.SeriesInstanceUID))
    frame_uid = None
    frames = ds.get("ReferencedFrameOfReferenceSequence", [])
    if frames and frames[0].get("FrameOfReferenceUID"):
        frame_uid = str(frames[0].FrameOfReferenceUID)
    return RtStruct(str(path), frame_uid, series, rois)


def _segments_cross(points: np.ndarray) -> bool:
    """True when two non-adjacent edges of the closed polygon ``points`` (N x 2) properly intersect."""
    a = points
    b = np.roll(points, -1, axis=0)
    n = len(a)
    if n < 4:
        return False

    def orientation(p, q, r):
        return np.sign((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
                       - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))

    for start in range(0, n, 512):  # blocks of edges keep memory at 512 x N
        i = np.arange(start, min(start + 512, n))[:, None]
        j = np.arange(n)[None, :]
        adjacent = (np.abs(i - j) <= 1) | (np.abs(i - j) == n - 1)
        ai, bi, aj, bj = a[i], b[i], a[j], b[j]
        o1, o2 = orientation(ai, bi, aj), orientation(ai, bi, bj)
        o3, o4 = orientation(aj, bj, ai), orientation(aj, bj, bi)
        crossing = (o1 * o2 < 0) & (o3 * o4 < 0) & ~adjacent
        if crossing.any():
            return True
    return False


def _grid_indices(points_lps: np.ndarray, grid: sitk.Image) -> np.ndarray:
    """Continuous (i, j, k) indices of LPS points on ``grid``."""
    direction = np.asarray(grid.GetDirection(), float).reshape(3, 3)
    spacing = np.asarray(grid.GetSpacing(), float)
    return ((points_lps - np.asarray(grid.GetOrigin(), float)) @ direction) / spacing


def _rasterise_roi(roi: RoiContours, grid: sitk.Image, where: str, warnings: List[str]
                   ) -> Tuple[Optional[np.ndarray], Tuple[int, int, int]]:
    """(mask (k, j, i) over the ROI's bounding box, start index (i, j, k)) on ``grid``, or (None, ...) if empty."""
    from skimage.draw import polygon

    size = np.asarray(grid.GetSize())
    indexed = [_grid_indices(c, grid) for c in roi.contours]
    slices = []
    for contour, ijk in zip(roi.contours, indexed):
        k = float(np.mean(ijk[:, 2]))
        if np.ptp(ijk[:, 2]) > 2 * PLANE_TOLERANCE or abs(k - round(k)) > PLANE_TOLERANCE:
            raise GeometryError(f"{where}: ROI '{roi.name}': a contour at z = {contour[0, 2]:.2f} mm does not lie in "
                                "a slice plane of the CT it is rasterised onto; expected the CT the structure set "
                                "was drawn on (its Referenced Series)")
        slices.append(int(round(k)))
    inside = [s for s in slices if 0 <= s < size[2]]
    if not inside:
        return None, (0, 0, 0)
    all_ij = np.concatenate([ijk[:, :2] for ijk, s in zip(indexed, slices) if 0 <= s < size[2]])
    low = np.clip(np.floor(all_ij.min(axis=0)).astype(int), 0, size[:2] - 1)
    high = np.clip(np.ceil(all_ij.max(axis=0)).astype(int) + 1, 1, size[:2])
    k0, k1 = min(inside), max(inside) + 1
    mask = np.zeros((k1 - k0, high[1] - low[1], high[0] - low[0]), bool)
    crossed = []
    for contour, ijk, k in zip(roi.contours, indexed, slices):
        if not 0 <= k < size[2]:
            continue
        if _segments_cross(ijk[:, :2]):
            crossed.append(round(float(contour[0, 2]), 2))
        rows, cols = polygon(ijk[:, 1] - low[1], ijk[:, 0] - low[0], shape=mask.shape[1:])
        filled = np.zeros(mask.shape[1:], bool)
        filled[rows, cols] = True
        mask[k - k0] ^= filled  # contours inside contours are holes (even-odd)
    if crossed:
        warnings.append(f"{where}: ROI '{roi.name}': self-intersecting contour(s) at z = "
                        f"{', '.join(f'{z:g}' for z in crossed[:5])}{' ...' if len(crossed) > 5 else ''} mm, "
                        "filled by the even-odd rule; check the ROI")
    if len(inside) < len(slices):
        warnings.append(f"{where}: ROI '{roi.name}': {len(slices) - len(inside)} contour(s) outside the CT's slices "
                        "were ignored")
    return mask, (int(low[0]), int(low[1]), int(k0))


def _carve_overlaps(masks: OrderedDict[str, Tuple[np.ndarray, Tuple[int, int, int]]], voxel_ml: float
                    ) -> List[str]:
    """Give each voxel in several ROIs to the smallest one (in place); one note per carve."""
    notes = []
    order = sorted(masks, key=lambda name: int(masks[name][0].sum()))
    for index, small in enumerate(order):
        small_mask, small_start = masks[small]
        for large in order[index + 1:]:
            large_mask, large_start = masks[large]
            lo = np.maximum(np.asarray(small_start), np.asarray(large_start))
            hi = np.minimum(np.asarray(small_start) + np.asarray(small_mask.shape[::-1]),
                            np.asarray(large_start) + np.asarray(large_mask.shape[::-1]))
            if np.any(hi <= lo):
                continue
            window_small = tuple(slice(int(lo[a] - small_start[a]), int(hi[a] - small_start[a])) for a in (2, 1, 0))
            window_large = tuple(slice(int(lo[a] - large_start[a]), int(hi[a] - large_start[a])) for a in (2, 1, 0))
            shared = small_mask[window_small] & large_mask[window_large]
            if shared.any():
                large_mask[window_large] &= ~shared
                notes.append(f"'{small}' ({shared.sum() * voxel_ml:.2f} mL) carved out of '{large}': a voxel in "
                             "several ROIs belongs to the smallest (as in a labelmap)")
    return notes


def rasterise_rtstruct(structure_set: RtStruct, grid: sitk.Image) -> RtStructSegments:
    """Every ROI with contours rasterised onto ``grid`` (the CT the structures were drawn on), overlaps carved."""
    where = Path(structure_set.path).name
    warnings: List[str] = []
    notes: List[str] = []
    rasters: OrderedDict[str, Tuple[np.ndarray, Tuple[int, int, int]]] = OrderedDict()
    colours: Dict[str, Optional[Colour]] = {}
    for roi in structure_set.rois:
        if roi.skipped:
            notes.append(f"ROI '{roi.name}': {roi.skipped} contour(s) not CLOSED_PLANAR (points or open lines) "
                         "enclose no volume and were skipped")
        if not roi.contours:
            notes.append(f"ROI '{roi.name}' has no closed contour and was skipped")
            continue
        if roi.name in rasters:
            raise InputError(f"{structure_set.path}: two ROIs are named '{roi.name}'; ROI names must be unique")
        mask, start = _rasterise_roi(roi, grid, structure_set.path, warnings)
        if mask is None or not mask.any():
            warnings.append(f"{where}: ROI '{roi.name}' encloses no voxel of the CT and was skipped")
            continue
        rasters[roi.name] = (mask, start)
        colours[roi.name] = roi.colour
    if not rasters:
        raise InputError(f"{structure_set.path}: no ROI encloses any voxel of the referenced CT")
    notes += _carve_overlaps(rasters, float(np.prod(grid.GetSpacing())) / 1000.0)
    segments = []
    for name, (mask, start) in rasters.items():
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.SetSpacing(grid.GetSpacing())
        image.SetDirection(grid.GetDirection())
        image.SetOrigin(grid.TransformIndexToPhysicalPoint([int(v) for v in start]))
        segments.append((name, image, colours[name]))
    return RtStructSegments(segments, notes, warnings)


def check_referenced_ct(structure_set: RtStruct, ct_series: Dict[str, str], reference_series_uid: Optional[str],
                        option: str = "--segmentation") -> None:
    """InputError unless the structure set references the reference CT (``ct_series``: series UID -> label).

    A structure set that names no series is accepted (its contours are checked against the CT's
    slice planes when rasterised).
    """
    referenced = structure_set.referenced_series_uids
    if not referenced or (reference_series_uid and reference_series_uid in referenced):
        return
    others = [ct_series[uid] for uid in referenced if uid in ct_series]
    if others:
        raise InputError(f"{option} {structure_set.path}: RTSTRUCT contours were drawn on the CT of {others[0]}, not "
                         "on the reference time point's CT; pass --reference-timepoint for that time point")
    raise InputError(f"{option} {structure_set.path}: RTSTRUCT references CT series {referenced[0]}, which is not "
                     f"in the cycle (its CTs: {', '.join(ct_series) or 'none'}); expected contours drawn on "
                     "the cycle's reference CT")
