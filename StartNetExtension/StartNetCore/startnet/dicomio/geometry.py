"""Patient geometry (LPS) of NM multi-frame reconstructions and of one-file-per-slice series.

- NM multi-frame: ImagePositionPatient / ImageOrientationPatient of the first frame inside the
  Detector Information Sequence (0054,0022) (top level accepted with a warning), frames stacked
  along the normal row x column at SpacingBetweenSlices (0018,0088) (a negative value stacks
  against the normal; SliceThickness (0018,0050) is the fallback, with a warning).
- One file per slice (CT, single-frame SPECT): slices sorted by position along the normal; the
  gaps must agree within max(0.02 mm, 1 %) and the positions must lie on the normal (no gantry
  tilt), otherwise DicomInputError names the series and the gap.
SimpleITK direction columns are (row direction, column direction, slice direction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.dicomio.rawattr import (
    COLUMNS,
    IMAGE_ORIENTATION,
    IMAGE_POSITION,
    PIXEL_SPACING,
    ROWS,
    raw_floats,
    signature,
)
from startnet.errors import DicomInputError

DETECTOR_SEQ = "Detector Information Sequence (0054,0022)"
_CONSISTENCY_TAGS = (IMAGE_ORIENTATION, PIXEL_SPACING, ROWS, COLUMNS)  # byte-identical: no re-check


@dataclass
class Grid:
    """Origin (mm), spacing (x, y, z mm) and 3x3 direction (columns = axes) of a volume."""

    origin: np.ndarray
    spacing: Tuple[float, float, float]
    direction: np.ndarray

    def image(self, array_zyx: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(array_zyx)
        img.SetOrigin(tuple(float(v) for v in self.origin))
        img.SetSpacing(tuple(float(v) for v in self.spacing))
        img.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return img


def as_floats(value, n: int, path: str, attribute: str) -> np.ndarray:
    try:
        out = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise DicomInputError(f"{path}: {attribute} is {value!r}, expected {n} numbers") from exc
    if out.size != n or not np.all(np.isfinite(out)):
        raise DicomInputError(f"{path}: {attribute} is {value!r}, expected {n} numbers")
    return out


def orientation(value, path: str, attribute: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    iop = as_floats(value, 6, path, attribute)
    row, col = iop[:3], iop[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise DicomInputError(f"{path}: {attribute} {list(iop)} is not two orthonormal directions")
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    return row, col, np.cross(row, col)


def pixel_spacing(ds, path: str) -> Tuple[float, float]:
    """(column spacing x, row spacing y) in mm from PixelSpacing (0028,0030)."""
    value = getattr(ds, "PixelSpacing", None)
    if value is None:
        raise DicomInputError(f"{path}: PixelSpacing (0028,0030) is missing")
    ps = as_floats(value, 2, path, "PixelSpacing (0028,0030)")
    if np.any(ps <= 0):
        raise DicomInputError(f"{path}: PixelSpacing (0028,0030) is {list(ps)}, expected positive values")
    return float(ps[1]), float(ps[0])


def nm_multiframe_grid(ds, path: str, warnings: List[str]) -> Grid:
    """Grid of an NM multi-frame reconstruction (frames = slices)."""
    det = getattr(ds, "DetectorInformationSequence", None)
    item = det[0] if det else None
    ipp = getattr(item, "ImagePositionPatient", None) if item is not None else None
    iop = getattr(item, "ImageOrientationPatient", None) if item is not None else None
    if ipp is None or iop is None:
        if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
            warnings.append(f"{path}: ImagePositionPatient/ImageOrientationPatient not in {DETECTOR_SEQ}; "
                            "used the top-level values")
            ipp, iop = ds.ImagePositionPatient, ds.ImageOrientationPatient
        else:
            missing = "ImagePositionPatient (0020,0032)" if ipp is None else "ImageOrientationPatient (0020,0037)"
            raise DicomInputError(f"{path}: {missing} is missing in {DETECTOR_SEQ}; the SPECT "
                                  "reconstruction has no patient geometry")
    origin = as_floats(ipp, 3, path, f"ImagePositionPatient (0020,0032) in {DETECTOR_SEQ}")
    row, col, normal = orientation(iop, path, f"ImageOrientationPatient (0020,0037) in {DETECTOR_SEQ}")
    sx, sy = pixel_spacing(ds, path)
    sbs = getattr(ds, "SpacingBetweenSlices", None)
    if sbs in (None, ""):
        thick = getattr(ds, "SliceThickness", None)
        if thick in (None, ""):
            raise DicomInputError(f"{path}: SpacingBetweenSlices (0018,0088) and SliceThickness (0018,0050) "
                                  "are both missing; the slice spacing of the SPECT is unknown")
        warnings.append(f"{path}: SpacingBetweenSlices (0018,0088) missing; used SliceThickness "
                        f"(0018,0050) = {float(thick):g} mm as slice spacing")
        sbs = thick
    sz = float(sbs)
    if sz == 0 or not np.isfinite(sz):
        raise DicomInputError(f"{path}: SpacingBetweenSlices (0018,0088) is {sbs!r}, expected non-zero")
    axis = normal if sz > 0 else -normal
    return Grid(origin, (sx, sy, abs(sz)), np.column_stack([row, col, axis]))


def stack_slices(headers: Sequence, paths: Sequence[str], label: str,
                 warnings: List[str]) -> Tuple[List[int], Grid]:
    """Order (indices into ``headers``) and grid of a one-file-per-slice series."""
    first, first_path = headers[0], paths[0]
    same_as_first = signature(first, _CONSISTENCY_TAGS)  # before any attribute access converts them
    iop0 = getattr(first, "ImageOrientationPatient", None)
    if iop0 is None:
        raise DicomInputError(f"{first_path}: ImageOrientationPatient (0020,0037) is missing ({label})")
    row, col, normal = orientation(iop0, first_path, "ImageOrientationPatient (0020,0037)")
    sx, sy = pixel_spacing(first, first_path)
    shape0 = (int(getattr(first, "Rows", 0) or 0), int(getattr(first, "Columns", 0) or 0))
    positions = np.empty((len(headers), 3))
    for i, (ds, path) in enumerate(zip(headers, paths)):
        ipp = raw_floats(ds, IMAGE_POSITION, 3, path, "ImagePositionPatient (0020,0032)")
        if ipp is None:
            raise DicomInputError(f"{path}: ImagePositionPatient (0020,0032) is missing ({label})")
        positions[i] = ipp
        if i and signature(ds, _CONSISTENCY_TAGS) != same_as_first:
            r, c, _ = orientation(ds.ImageOrientationPatient, path, "ImageOrientationPatient (0020,0037)") \
                if "ImageOrientationPatient" in ds else (None, None, None)
            if r is None or np.abs(r - row).max() > 1e-3 or np.abs(c - col).max() > 1e-3:
                raise DicomInputError(f"{path}: ImageOrientationPatient (0020,0037) differs from "
                                      f"{first_path} within {label}")
            if pixel_spacing(ds, path) != (sx, sy):
                raise DicomInputError(f"{path}: PixelSpacing (0028,0030) differs from {first_path} within {label}")
            shape = (int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0))
            if shape != shape0:
                raise DicomInputError(f"{path}: Rows/Columns (0028,0010/0011) {shape} differ from "
                                      f"{shape0} in {first_path} within {label}")
    thick = getattr(first, "SpacingBetweenSlices", None) or getattr(first, "SliceThickness", None) \
        if len(headers) == 1 else None
    return order_positions(positions, (row, col, normal), (sx, sy), list(paths), label, warnings, thick)


def order_positions(positions: np.ndarray, axes, spacing_xy: Tuple[float, float], names: List[str], label: str,
                    warnings: List[str], single_thickness=None) -> Tuple[List[int], Grid]:
    """Sort slice positions along the normal and check the stack (gaps, duplicates, shear).

    ``names`` says what each position came from (file, or file and frame) for the messages.
    """
    row, col, normal = axes
    sx, sy = spacing_xy
    along = positions @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    along_sorted = along[order]
    if len(order) == 1:
        if single_thickness in (None, ""):
            raise DicomInputError(f"{names[0]}: single-slice {label} without SliceThickness (0018,0050)")
        thick = float(single_thickness)
        warnings.append(f"{label}: a single slice; slice spacing taken from the header ({thick:g} mm)")
        return order, Grid(positions[0], (sx, sy, thick), np.column_stack([row, col, normal]))
    gaps = np.diff(along_sorted)
    dup = int(np.argmin(gaps))
    if gaps[dup] < 1e-3:
        raise DicomInputError(
            f"{label}: two slices at the same position {along_sorted[dup]:.2f} mm along the slice normal "
            f"({names[order[dup]]} and {names[order[dup + 1]]}): ImagePositionPatient (0020,0032) duplicated"
        )
    spacing = float(np.median(gaps))
    tol = max(0.02, 0.01 * spacing)
    worst = int(np.argmax(np.abs(gaps - spacing)))
    if abs(gaps[worst] - spacing) > tol:
        raise DicomInputError(
            f"{label}: inconsistent slice spacing: gap of {gaps[worst]:.3f} mm between {names[order[worst]]} "
            f"and {names[order[worst + 1]]} (ImagePositionPatient (0020,0032)) where the series spacing is "
            f"{spacing:.3f} mm (missing or extra slices?)"
        )
    offsets = positions[order] - positions[order[0]] - np.outer(along_sorted - along_sorted[0], normal)
    if np.abs(offsets).max() > max(0.05, 0.01 * min(sx, sy)):
        raise DicomInputError(f"{label}: slice positions (ImagePositionPatient (0020,0032)) are not along the "
                              "slice normal (gantry tilt or sheared stack is not supported)")
    return order, Grid(positions[order[0]], (sx, sy, spacing), np.column_stack([row, col, normal]))


def _extent_along(img: sitk.Image, axis: np.ndarray) -> Tuple[float, float]:
    size = np.array(img.GetSize())
    spacing = np.array(img.GetSpacing())
    direction = np.array(img.GetDirection()).reshape(3, 3)
    origin = np.array(img.GetOrigin())
    values = []
    for corner in np.ndindex(2, 2, 2):
        idx = np.where(np.array(corner) == 0, -0.5, size - 0.5)
        values.append(float((origin + direction @ (idx * spacing)) @ axis))
    return min(values), max(values)


def check_ct_covers_spect(spect: sitk.Image, ct: sitk.Image, spect_label: str, ct_label: str,
                          warnings: List[str]) -> float:
    """Length (mm) of the SPECT field of view along the CT slice axis not covered by the CT.

    Up to max(5 mm, one SPECT slice) is accepted silently, up to 25 % of the SPECT length with
    a warning; more is a DicomInputError (the CT is needed for densities and segmentation).
    """
    axis = np.array(ct.GetDirection()).reshape(3, 3)[:, 2]
    ct_lo, ct_hi = _extent_along(ct, axis)
    sp_lo, sp_hi = _extent_along(spect, axis)
    uncovered = max(0.0, ct_lo - sp_lo) + max(0.0, sp_hi - ct_hi)
    uncovered = min(uncovered, sp_hi - sp_lo)
    length = sp_hi - sp_lo
    tolerance = max(5.0, spect.GetSpacing()[2])
    if uncovered <= tolerance:
        return uncovered
    message = (f"CT {ct_label} covers {ct_lo:.1f}..{ct_hi:.1f} mm along its slice axis but SPECT {spect_label} "
               f"spans {sp_lo:.1f}..{sp_hi:.1f} mm: {uncovered:.1f} mm ({100 * uncovered / length:.0f} %) "
               "of the SPECT field of view has no CT")
    if uncovered > 0.25 * length:
        raise DicomInputError(message)
    warnings.append(message)
    return uncovered
