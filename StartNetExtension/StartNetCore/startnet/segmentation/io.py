"""Load existing segmentations onto the reference grid: .seg.nrrd, DICOM SEG, labelmap + names.

* Slicer ``.seg.nrrd``: header fields ``Segment{i}_Name``, ``_LabelValue``, ``_Layer``
  (multi-layer files are 4-D with the layer as first axis), ``_Color`` ("r g b", 0..1).
* DICOM SEG (binary or fractional), read with highdicom; geometry from the SEG itself.
* DICOM RTSTRUCT: each ROI's planar contours rasterised onto the CT they were drawn on (the
  ``grid`` / reference image), overlaps carved (:mod:`startnet.segmentation.rtstruct`).
* Labelmaps (.nii, .nii.gz, .nrrd, .mha) with ``labels`` = {value: name} (or {name: value}, or a
  JSON file holding either); without names, segments are called ``label_<value>``. Names of
  TotalSegmentator (``kidney_left``...) and Slicer ("left kidney") are understood.

Any grid is accepted and resampled onto ``reference_image``. Onto a grid as fine as the
segmentation's: nearest neighbour. Onto a coarser grid (e.g. CT-grid masks onto SPECT), or with
``fractional=True``: the fraction of each reference voxel covered by the segment is measured on
a supersampled copy of the reference grid and the mask is fraction >= 0.5 (majority). Nearest
neighbour onto a coarser grid would pick one sub-voxel arbitrarily (and, when voxel centres fall
on borders, differently depending on the file's axis order). ``fractional=True`` also keeps the
fractions in ``Segmentation.fractions``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk

from startnet.errors import GeometryError, InputError
from startnet.segmentation.container import Segmentation, canonical_name

LabelsArg = Optional[Union[Mapping, str, Path]]


def _parse_labels(labels: LabelsArg, where: str) -> Optional[Dict[int, str]]:
    if labels is None:
        return None
    if isinstance(labels, (str, Path)):
        try:
            labels = json.loads(Path(labels).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"label names file {labels}: cannot read JSON ({exc})") from exc
    if not isinstance(labels, Mapping):
        raise InputError(f"{where}: labels must map label value -> name, got {type(labels).__name__}")
    out: Dict[int, str] = {}
    for key, value in labels.items():
        try:
            if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.isdigit()
                                                       and not str(key).isdigit()):
                out[int(value)] = str(key)
            else:
                out[int(key)] = str(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: label entry {key!r}: {value!r} is not value -> name") from exc
    return out


def _supersampled_grid(reference: sitk.Image, source: sitk.Image) -> Tuple[sitk.Image, List[int]]:
    factors = [max(1, int(np.ceil(r / s - 1e-6))) for r, s in zip(reference.GetSpacing(), source.GetSpacing())]
    factors = [min(f, 8) for f in factors]
    spacing = [r / f for r, f in zip(reference.GetSpacing(), factors)]
    direction = np.asarray(reference.GetDirection()).reshape(3, 3)
    shift = direction @ (np.asarray(spacing) / 2 - np.asarray(reference.GetSpacing()) / 2)
    fine = sitk.Image([n * f for n, f in zip(reference.GetSize(), factors)], sitk.sitkUInt8)
    fine.SetSpacing(spacing)
    fine.SetOrigin(tuple(float(v) for v in np.asarray(reference.GetOrigin()) + shift))
    fine.SetDirection(reference.GetDirection())
    return fine, factors


def resample_mask(mask: sitk.Image, reference: sitk.Image, fractional: bool = False
                  ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(boolean mask, fraction or None) of a binary ``mask`` image on ``reference``'s grid.

    Only the part of the reference grid around the mask's bounding box is resampled (a kidney
    on a whole-body CT costs its own size, not the CT's), then placed into full-size arrays.
    """
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    shape = tuple(reversed(reference.GetSize()))
    full_mask = np.zeros(shape, bool)
    full_fraction = np.zeros(shape, np.float32) if fractional else None
    region = _reference_region(mask, reference)
    if region is None:
        return full_mask, full_fraction
    start, size = region
    sub_reference = sitk.Image([int(v) for v in size], sitk.sitkUInt8)
    sub_reference.SetSpacing(reference.GetSpacing())
    sub_reference.SetDirection(reference.GetDirection())
    sub_reference.SetOrigin(reference.TransformIndexToPhysicalPoint([int(v) for v in start]))
    sub_mask, sub_fraction = _resample_mask_full(mask, sub_reference, fractional)
    window = tuple(slice(int(b), int(b) + int(n)) for b, n in zip(reversed(start), reversed(size)))
    full_mask[window] = sub_mask
    if fractional:
        full_fraction[window] = sub_fraction
    return full_mask, full_fraction


def _reference_region(mask: sitk.Image, reference: sitk.Image):
    """(start, size) in reference indices covering the mask's non-zero voxels plus a margin, or None."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(mask)
    if 1 not in statistics.GetLabels():
        return None
    box = statistics.GetBoundingBox(1)  # (x0, y0, z0, nx, ny, nz) in mask indices
    low = [b - 1 for b in box[:3]]
    high = [b + n for b, n in zip(box[:3], box[3:])]
    corners = [mask.TransformContinuousIndexToPhysicalPoint([float(c[0]), float(c[1]), float(c[2])])
               for c in np.array(np.meshgrid(*zip(low, high))).T.reshape(-1, 3)]
    indices = np.array([reference.TransformPhysicalPointToContinuousIndex(p) for p in corners])
    start = np.maximum(np.floor(indices.min(axis=0)).astype(int) - 1, 0)
    stop = np.minimum(np.ceil(indices.max(axis=0)).astype(int) + 2, np.array(reference.GetSize()))
    if np.any(stop <= start):
        return None
    return start, stop - start


def _resample_mask_full(mask: sitk.Image, reference: sitk.Image, fractional: bool
                        ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    coarser = any(r >= 1.5 * s for r, s in zip(reference.GetSpacing(), mask.GetSpacing()))
    if not fractional and not coarser:
        out = sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        return sitk.GetArrayFromImage(out) > 0, None
    fine, factors = _supersampled_grid(reference, mask)
    fine_mask = sitk.Resample(mask, fine, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkFloat32)
    fraction = sitk.GetArrayFromImage(sitk.BinShrink(fine_mask, factors)) if any(f > 1 for f in factors) \
        else sitk.GetArrayFromImage(fine_mask)
    return fraction >= 0.5, (fraction.astype(np.float32) if fractional else None)


def _color(text: str) -> Optional[Tuple[float, float, float]]:
    try:
        values = tuple(float(v) for v in text.split()[:3])
    except ValueError:
        return None
    return values if len(values) == 3 else None


def _read_seg_nrrd(path: Path) -> List[Tuple[str, sitk.Image, Optional[Tuple[float, float, float]]]]:
    image = sitk.ReadImage(str(path))
    keys = set(image.GetMetaDataKeys())
    indices = sorted(int(m.group(1)) for k in keys for m in [re.match(r"Segment(\d+)_Name$", k)] if m)
    layers = image.GetNumberOfComponentsPerPixel()
    layer_images: Dict[int, _LabelLayer] = {}
    out = []
    for i in indices:
        name = image.GetMetaData(f"Segment{i}_Name")
        value = int(image.GetMetaData(f"Segment{i}_LabelValue")) if f"Segment{i}_LabelValue" in keys else 1
        layer = int(image.GetMetaData(f"Segment{i}_Layer")) if f"Segment{i}_Layer" in keys else 0
        if layer >= layers:
            raise InputError(f"{path}: Segment{i}_Layer = {layer} but the file has {layers} layer(s)")
        if layer not in layer_images:
            layer_images[layer] = _LabelLayer(sitk.VectorIndexSelectionCast(image, layer) if layers > 1 else image)
        color = _color(image.GetMetaData(f"Segment{i}_Color")) if f"Segment{i}_Color" in keys else None
        out.append((name, layer_images[layer].mask(value), color))
    return out


class _LabelLayer:
    """A label image and the bounding box of each of its labels, so each mask is cut to its own size."""

    def __init__(self, image: sitk.Image):
        self.image = sitk.Cast(image, sitk.sitkUInt32) if image.GetPixelID() not in (
            sitk.sitkUInt8, sitk.sitkUInt16, sitk.sitkUInt32) else image
        self.statistics = sitk.LabelShapeStatisticsImageFilter()
        self.statistics.Execute(self.image)
        self.present = sorted(int(v) for v in self.statistics.GetLabels())

    def mask(self, value: int) -> sitk.Image:
        """UInt8 mask of ``value`` on the part of the grid around it (one empty voxel if absent)."""
        if value not in self.present:
            return sitk.RegionOfInterest(self.image, [1, 1, 1], [0, 0, 0]) * 0
        box = self.statistics.GetBoundingBox(value)
        cropped = sitk.RegionOfInterest(self.image, [int(v) for v in box[3:]], [int(v) for v in box[:3]])
        return sitk.Cast(cropped == value, sitk.sitkUInt8)


def _read_dicom_seg(path: Path) -> List[Tuple[str, sitk.Image, Optional[Tuple[float, float, float]]]]:
    import highdicom as hd

    try:
        seg = hd.seg.segread(str(path))
        if not hasattr(seg, "get_volume"):  # highdicom < 0.23 (Python 3.9 / Slicer 5.8)
            return _read_dicom_seg_frames(seg, path)
        volume = seg.get_volume(combine_segments=False, rescale_fractional=True, dtype=np.float32)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise InputError(f"{path}: cannot read DICOM SEG ({type(exc).__name__}: {exc})") from exc
    affine = np.asarray(volume.affine, dtype=float)
    array = np.asarray(volume.array)  # (i, j, k, segment) along the affine's axes
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    out = []
    for position, number in enumerate(seg.get_segment_numbers()):
        description = seg.get_segment_description(number)
        voxels = np.ascontiguousarray(np.transpose(array[..., position], (2, 1, 0)))  # -> (k, j, i)
        image = sitk.GetImageFromArray((voxels >= 0.5).astype(np.uint8))
        image.SetSpacing(tuple(float(s) for s in spacing))
        image.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
        image.SetDirection(tuple(float(v) for v in direction.ravel()))
        out.append((description.segment_label, image, None))
    return out


def _read_dicom_seg_frames(ds, path: Path) -> List[Tuple[str, sitk.Image, Optional[Tuple[float, float, float]]]]:
    """DICOM SEG frames -> one image per segment, from the functional groups (any highdicom version)."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    orientation = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    row_spacing, column_spacing = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    frames = np.asarray(ds.pixel_array)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    if getattr(ds, "SegmentationType", "BINARY") == "FRACTIONAL":
        frames = frames.astype(np.float32) / float(getattr(ds, "MaximumFractionalValue", 255) or 255)
    positions, numbers = [], []
    for group in ds.PerFrameFunctionalGroupsSequence:
        positions.append(np.array([float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]))
        numbers.append(int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber))
    distances = np.array([float(np.dot(normal, p)) for p in positions])
    unique = np.unique(np.round(distances, 3))
    gaps = np.diff(unique)
    slice_spacing = float(np.min(gaps)) if gaps.size else float(
        getattr(shared.PixelMeasuresSequence[0], "SpacingBetweenSlices", None)
        or getattr(shared.PixelMeasuresSequence[0], "SliceThickness", 1.0))
    first = positions[int(np.argmin(distances))]
    depth = int(round((unique[-1] - unique[0]) / slice_spacing)) + 1 if unique.size else 1
    labels = {int(item.SegmentNumber): str(item.SegmentLabel) for item in ds.SegmentSequence}
    out = []
    for number, label in labels.items():
        volume = np.zeros((depth, frames.shape[1], frames.shape[2]), np.uint8)
        for frame, (frame_number, distance) in enumerate(zip(numbers, distances)):
            if frame_number == number:
                volume[int(round((distance - unique[0]) / slice_spacing))] |= (frames[frame] >= 0.5)
        image = sitk.GetImageFromArray(volume)
        image.SetSpacing((column_spacing, row_spacing, slice_spacing))
        image.SetOrigin(tuple(float(v) for v in first))
        image.SetDirection(tuple(float(v) for v in np.column_stack([row_dir, col_dir, normal]).ravel()))
        out.append((label, image, None))
    if not out:
        raise InputError(f"{path}: DICOM SEG has no segments (SegmentSequence is empty)")
    return out


def _read_labelmap(path: Path, labels: Optional[Dict[int, str]]) -> List[Tuple[str, sitk.Image, None]]:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read as an image ({exc})") from exc
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
        raise InputError(f"{path}: expected a scalar 3D labelmap")
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        values = sitk.GetArrayViewFromImage(image)
        if not np.array_equal(values, np.round(values)) or values.min() < 0:
            raise InputError(f"{path}: labelmap values must be non-negative integers")
        image = sitk.Cast(image, sitk.sitkUInt32)
    elif image.GetPixelID() in (sitk.sitkInt8, sitk.sitkInt16, sitk.sitkInt32, sitk.sitkInt64):
        if sitk.GetArrayViewFromImage(image).min() < 0:
            raise InputError(f"{path}: labelmap values must be non-negative integers")
        image = sitk.Cast(image, sitk.sitkUInt32)
    layer = _LabelLayer(image)
    present = layer.present
    if labels is None:
        labels = {v: f"label_{v}" for v in present}
    out = []
    for value, name in labels.items():
        if value not in present:
            raise InputError(f"{path}: label {value} ('{name}') does not occur in the labelmap; "
                             f"labels present: {present}")
        out.append((name, layer.mask(value), None))
    return out


def _has_segment_fields(path: Path) -> bool:
    """True for a Slicer segmentation saved under a plain .nrrd name (Segment0_Name in the header)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return False
    return "Segment0_Name" in reader.GetMetaDataKeys()


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


class SegmentList(list):
    """Segments as :func:`read_segments` returns them, with what reading them did (``notes``, ``warnings``)."""

    def __init__(self, items=(), notes=(), warnings=()):
        super().__init__(items)
        self.notes = list(notes)
        self.warnings = list(warnings)


def read_segments(path: Union[str, Path], labels: LabelsArg = None, grid: Optional[sitk.Image] = None
                  ) -> List[Tuple[str, sitk.Image, Optional[Tuple[float, float, float]]]]:
    """(name, mask image on the file's own grid (cut to the segment), colour) for each segment.

    An RTSTRUCT has no grid of its own: its contours are rasterised onto ``grid``, the CT they
    were drawn on; the result is a :class:`SegmentList` whose ``notes`` say which ROIs were carved.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"segmentation file {path} does not exist")
    parsed = _parse_labels(labels, str(path))
    name_lower = path.name.lower()
    if name_lower.endswith(".seg.nrrd") or (name_lower.endswith(".nrrd") and _has_segment_fields(path)):
        segments = _read_seg_nrrd(path)
        if not segments:
            raise InputError(f"{path}: no Segment0_Name field; expected a Slicer .seg.nrrd")
        return segments
    if _is_dicom(path):
        from startnet.segmentation.rtstruct import is_rtstruct, rasterise_rtstruct, read_rtstruct

        if is_rtstruct(path):
            if grid is None:
                raise InputError(f"{path}: an RTSTRUCT is rasterised onto the CT its contours were drawn on; "
                                 "no CT was given")
            rasterised = rasterise_rtstruct(read_rtstruct(path), grid)
            return SegmentList(rasterised.segments, rasterised.notes, rasterised.warnings)
        return _read_dicom_seg(path)
    return _read_labelmap(path, parsed)


def load_segmentation(path: Union[str, Path], reference_image: sitk.Image, labels: LabelsArg = None,
                      *, fractional: bool = False, canonical_names: bool = True,
                      segments: Optional[List[Tuple[str, sitk.Image, Optional[Tuple[float, float, float]]]]] = None
                      ) -> Segmentation:
    """Read a segmentation file and put its segments on ``reference_image``'s grid.

    ``labels`` selects/names labelmap values (ignored for .seg.nrrd and DICOM SEG, which carry
    names). With ``canonical_names`` TotalSegmentator/Slicer spellings become pipeline names
    (``kidney_left``...). Raises InputError for unreadable files, unknown labels and empty
    segments, GeometryError when a segment does not overlap the reference image. ``segments``
    (from :func:`read_segments`) avoids reading the same file again for another grid.
    """
    path = Path(path)
    if segments is None:
        segments = read_segments(path, labels, grid=reference_image)
    result = Segmentation(reference_image, source=str(path))
    result.notes = list(getattr(segments, "notes", [])) + list(getattr(segments, "warnings", []))
    for name, mask_image, color in segments:
        if not np.any(sitk.GetArrayViewFromImage(mask_image)):
            raise InputError(f"{path}: segment '{name}' is empty")
        mask, fraction = resample_mask(mask_image, reference_image, fractional)
        if not mask.any():
            raise GeometryError(f"{path}: segment '{name}' does not overlap the reference image "
                                f"(origin {tuple(round(o, 1) for o in reference_image.GetOrigin())}, size "
                                f"{reference_image.GetSize()}); expected the same patient frame of reference")
        key = canonical_name(name) if canonical_names else name
        result.add(key, mask, color, fraction)
    return result
