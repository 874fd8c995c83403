"""DICOM SEG export of the structures used for dosimetry (highdicom, BINARY, on the CT grid).

Each structure becomes one segment with SNOMED CT category/type codes chosen from its name
(kidneys with laterality, liver, spleen, tumours, ...; anything else is coded as "Tissue" and
keeps its name as the segment label). Masks may live on any grid (SPECT, dose grid): they are
resampled with nearest-neighbour interpolation onto each CT slice, so the SEG references the CT
series the physicist reviewed. Only frames holding part of a structure are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from startnet import __version__
from startnet.errors import DicomInputError, GeometryError, InputError
from startnet.report.dicomfile import save_dataset_atomically

ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")
_ANATOMY = hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")  # pydicom 2.4 (Python 3.9): ambiguous keyword
_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure
_LEFT_KIDNEY = hd.sr.CodedConcept("18639004", "SCT", "Left kidney")
_RIGHT_KIDNEY = hd.sr.CodedConcept("9846003", "SCT", "Right kidney")
# (substring of the lower-case name, category, type); the first match wins.
_NAME_CODES = (
    ("metast", _ABNORMAL, codes.SCT.NeoplasmMetastatic),
    ("tumo", _ABNORMAL, codes.SCT.Tumor),
    ("lesion", _ABNORMAL, codes.SCT.Lesion),
    ("liver", _ANATOMY, codes.SCT.Liver),
    ("spleen", _ANATOMY, codes.SCT.Spleen),
    ("marrow", _ANATOMY, codes.SCT.BoneMarrow),
    ("parotid", _ANATOMY, codes.SCT.ParotidGland),
    ("submandibular", _ANATOMY, codes.SCT.SubmandibularGland),
    ("salivary", _ANATOMY, codes.SCT.SalivaryGland),
    ("bladder", _ANATOMY, codes.SCT.Bladder),
    ("pancreas", _ANATOMY, codes.SCT.Pancreas),
    ("stomach", _ANATOMY, codes.SCT.Stomach),
    ("heart", _ANATOMY, codes.SCT.Heart),
    ("lung", _ANATOMY, codes.SCT.Lung),
    ("aorta", _ANATOMY, codes.SCT.Aorta),
    ("body", _ANATOMY, codes.SCT.EntireBody),
)
_DEFAULT_RGB = {"kidney_left": (185, 102, 83), "kidney_right": (216, 132, 105), "liver": (221, 130, 101),
                "spleen": (157, 108, 162), "tumour": (230, 200, 40), "tumor": (230, 200, 40)}
_FALLBACK_RGB = ((128, 174, 128), (111, 184, 210), (241, 214, 145), (177, 122, 101), (216, 101, 79),
                 (183, 156, 220), (144, 238, 144), (250, 128, 114))


def structure_codes(name: str) -> Tuple[hd.sr.CodedConcept, hd.sr.CodedConcept]:
    """SNOMED CT (category, property type) for a structure name such as "kidney_left" or "tumour_2"."""
    lower = name.lower()
    if "kidney" in lower or "renal" in lower:
        tokens = lower.replace("-", "_").replace(" ", "_").split("_")
        if "left" in tokens or "l" in tokens or "sin" in tokens:
            return hd.sr.CodedConcept.from_code(_ANATOMY), _LEFT_KIDNEY
        if "right" in tokens or "r" in tokens or "dx" in tokens:
            return hd.sr.CodedConcept.from_code(_ANATOMY), _RIGHT_KIDNEY
        return hd.sr.CodedConcept.from_code(_ANATOMY), hd.sr.CodedConcept.from_code(codes.SCT.Kidney)
    for key, category, prop in _NAME_CODES:
        if key in lower:
            return hd.sr.CodedConcept.from_code(category), hd.sr.CodedConcept.from_code(prop)
    return hd.sr.CodedConcept.from_code(codes.SCT.Tissue), hd.sr.CodedConcept.from_code(codes.SCT.Tissue)


def _load(ct_datasets: Sequence[Union[Dataset, str, Path]]) -> List[Dataset]:
    loaded = []
    for item in ct_datasets:
        if isinstance(item, Dataset):
            loaded.append(item)
            continue
        try:
            loaded.append(pydicom.dcmread(str(item), stop_before_pixels=True))  # geometry only
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise DicomInputError(f"DICOM SEG export: cannot read reference CT file {item}: {exc}") from exc
    if not loaded:
        raise InputError("DICOM SEG export: no reference CT datasets given")
    for ds in loaded:
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows",
                        "Columns", "FrameOfReferenceUID", "SOPInstanceUID"):
            if keyword not in ds:
                raise DicomInputError(f"DICOM SEG export: reference CT instance "
                                      f"{ds.get('SOPInstanceUID', '?')} lacks {keyword}")
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise DicomInputError("DICOM SEG export: the reference CT must be a series of single-frame "
                                  f"images; instance {ds.SOPInstanceUID} has {ds.NumberOfFrames} frames")
    first = loaded[0]
    for ds in loaded[1:]:
        if ds.FrameOfReferenceUID != first.FrameOfReferenceUID or (ds.Rows, ds.Columns) != (
                first.Rows, first.Columns) or not np.allclose(
                [float(v) for v in ds.ImageOrientationPatient],
                [float(v) for v in first.ImageOrientationPatient], atol=1e-4):
            raise DicomInputError(f"DICOM SEG export: CT instance {ds.SOPInstanceUID} differs from "
                                  f"{first.SOPInstanceUID} in frame of reference, orientation or matrix size")
    return loaded


@dataclass
class _CtGrid:
    """The reference CT series sorted along its slice normal, with its in-plane geometry."""

    datasets: List[Dataset]
    positions_mm: np.ndarray  # position of each slice along the normal
    row_dir: np.ndarray
    col_dir: np.ndarray
    normal: np.ndarray
    col_spacing_mm: float  # between columns (x in the image), PixelSpacing[1]
    row_spacing_mm: float  # between rows, PixelSpacing[0]
    thickness_mm: float
    uniform: bool  # slices equally spaced and stacked straight along the normal

    @property
    def shape(self) -> Tuple[int, int, int]:
        return len(self.datasets), int(self.datasets[0].Rows), int(self.datasets[0].Columns)

    def direction(self) -> Tuple[float, ...]:
        return tuple(np.column_stack([self.row_dir, self.col_dir, self.normal]).ravel())


def _ct_grid(datasets: List[Dataset]) -> _CtGrid:
    orientation = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    keyed = sorted(datasets, key=lambda ds: float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])))
    ipp = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in keyed])
    positions = ipp @ normal
    if len(set(np.round(positions, 4))) != len(positions):
        raise DicomInputError("DICOM SEG export: two reference CT instances share one slice position")
    gaps = np.diff(positions)
    thickness = float(np.median(gaps)) if len(gaps) else float(keyed[0].get("SliceThickness", 1.0) or 1.0)
    straight = ipp[0] + np.outer(positions - positions[0], normal)
    uniform = bool(np.allclose(gaps, thickness, atol=1e-3 * thickness) and np.allclose(ipp, straight, atol=1e-3))
    row_spacing, col_spacing = (float(v) for v in keyed[0].PixelSpacing)
    return _CtGrid(keyed, positions, row_dir, col_dir, normal, col_spacing, row_spacing, thickness, uniform)


def _reference(grid: _CtGrid, first_slice: int, n_slices: int, r0: int, c0: int, n_rows: int, n_cols: int):
    ref = sitk.Image(n_cols, n_rows, n_slices, sitk.sitkUInt8)
    ref.SetSpacing((grid.col_spacing_mm, grid.row_spacing_mm, grid.thickness_mm))
    ref.SetDirection(grid.direction())
    corner = (np.array([float(v) for v in grid.datasets[first_slice].ImagePositionPatient])
              + c0 * grid.col_spacing_mm * grid.row_dir + r0 * grid.row_spacing_mm * grid.col_dir)
    ref.SetOrigin(tuple(float(v) for v in corner))
    return ref


def _onto_ct(binary: sitk.Image, grid: _CtGrid):
    """Nearest-neighbour resample of a 0/1 mask onto the CT, restricted to the mask's bounding box.

    Returns (first slice, first row, first column, bool array) or None when it misses the CT.
    """
    array = sitk.GetArrayViewFromImage(binary)
    if not array.any():
        return None
    lo, hi = [], []
    for axis in range(3):  # numpy (z, y, x) -> SimpleITK index (x, y, z)
        other = tuple(a for a in range(3) if a != axis)
        occupied = np.flatnonzero(array.any(axis=other))
        lo.append(occupied[0] - 0.5)
        hi.append(occupied[-1] + 0.5)
    corners = [binary.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z)))
               for z in (lo[0], hi[0]) for y in (lo[1], hi[1]) for x in (lo[2], hi[2])]
    corners = np.array(corners) - np.array([float(v) for v in grid.datasets[0].ImagePositionPatient])
    cols = corners @ grid.row_dir / grid.col_spacing_mm
    rows = corners @ grid.col_dir / grid.row_spacing_mm
    along = corners @ grid.normal + grid.positions_mm[0]
    n_slices, n_rows, n_cols = grid.shape
    c0, c1 = max(int(np.floor(cols.min())) - 1, 0), min(int(np.ceil(cols.max())) + 2, n_cols)
    r0, r1 = max(int(np.floor(rows.min())) - 1, 0), min(int(np.ceil(rows.max())) + 2, n_rows)
    inside = np.flatnonzero((grid.positions_mm >= along.min() - grid.thickness_mm)
                            & (grid.positions_mm <= along.max() + grid.thickness_mm))
    if c0 >= c1 or r0 >= r1 or inside.size == 0:
        return None
    z0, z1 = int(inside[0]), int(inside[-1]) + 1
    if grid.uniform:
        ref = _reference(grid, z0, z1 - z0, r0, c0, r1 - r0, c1 - c0)
        out = sitk.GetArrayFromImage(sitk.Resample(binary, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                   sitk.sitkUInt8))
    else:
        out = np.stack([sitk.GetArrayFromImage(sitk.Resample(
            binary, _reference(grid, k, 1, r0, c0, r1 - r0, c1 - c0), sitk.Transform(), sitk.sitkNearestNeighbor,
            0, sitk.sitkUInt8))[0] for k in range(z0, z1)])
    if not out.any():
        return None
    return z0, r0, c0, out.astype(bool)


_SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def rgb_to_cielab(rgb: Sequence[float]) -> Tuple[float, float, float]:
    """sRGB (0-255, or 0-1 when all values <= 1) to CIE L*a*b* under D65, as DICOM display colours use.

    Written out here because highdicom 0.22, the last release for Python 3.9 (Slicer 5.8), has
    no RGB conversion.
    """
    values = np.array([float(v) for v in rgb])
    if values.max() > 1.0:
        values = values / 255.0
    values = np.clip(values, 0.0, 1.0)
    linear = np.where(values > 0.04045, ((values + 0.055) / 1.055) ** 2.4, values / 12.92)
    ratio = (_SRGB_TO_XYZ @ linear) / _D65_WHITE
    f = np.where(ratio > (6.0 / 29.0) ** 3, np.cbrt(ratio), ratio / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    lightness = 116.0 * f[1] - 16.0
    a_star, b_star = 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])
    return (float(np.clip(lightness, 0.0, 100.0)), float(np.clip(a_star, -128.0, 127.0)),
            float(np.clip(b_star, -128.0, 127.0)))


def dicom_cielab(rgb) -> List[int]:
    """Recommended Display CIELab Value (0062,000D): L* 0..100 and a*, b* -128..127 scaled to 0..65535."""
    lightness, a_star, b_star = rgb_to_cielab(rgb)
    return [int(round(lightness * 65535.0 / 100.0)), int(round((a_star + 128.0) * 65535.0 / 255.0)),
            int(round((b_star + 128.0) * 65535.0 / 255.0))]


def write_dicom_seg(masks: Mapping[str, sitk.Image], ct_datasets: Sequence[Union[Dataset, str, Path]],
                    path: Union[str, Path], *, colours: Optional[Mapping[str, Sequence[float]]] = None,
                    algorithm_type: Union[str, Mapping[str, str]] = "SEMIAUTOMATIC",
                    algorithm_name: str = "startnet segmentation", series_number: int = 902,
                    series_description: str = "START-NET dosimetry structures") -> Dataset:
    """Write the masks as a BINARY DICOM SEG referencing the CT series; returns the dataset.

    ``masks``: structure name -> SimpleITK image (non-zero = inside) on any grid in LPS.
    ``ct_datasets``: the reference CT series (pydicom Datasets or file paths).
    ``colours``: optional name -> RGB (0-255 or 0-1). ``algorithm_type``: "AUTOMATIC",
    "SEMIAUTOMATIC" or "MANUAL", for all structures or per name (MANUAL carries no algorithm
    identification; the others are identified as ``algorithm_name`` with this software version).
    """
    if not masks:
        raise InputError("DICOM SEG export: no structures to export")
    grid = _ct_grid(_load(ct_datasets))
    names = list(masks)
    boxes = []
    for name in names:
        mask = masks[name]
        if not isinstance(mask, sitk.Image) or mask.GetDimension() != 3:
            raise InputError(f"DICOM SEG export: mask '{name}' must be a 3-D SimpleITK image")
        box = _onto_ct(sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8), grid)
        if box is None:
            raise GeometryError(f"DICOM SEG export: structure '{name}' does not overlap the reference CT")
        boxes.append(box)
    first = min(b[0] for b in boxes)
    frames = np.arange(first, max(b[0] + b[3].shape[0] for b in boxes))
    plane = grid.shape[1:]
    count = np.zeros((len(frames),) + plane, dtype=np.uint8)
    for z0, r0, c0, sub in boxes:
        count[z0 - first:z0 - first + sub.shape[0], r0:r0 + sub.shape[1], c0:c0 + sub.shape[2]] += sub
    overlap = int(count.max()) > 1
    del count
    pixel_array = np.zeros((len(frames),) + plane + ((len(names),) if overlap else ()), dtype=np.uint8)
    for number, (z0, r0, c0, sub) in enumerate(boxes, start=1):
        zs, rs, cs = slice(z0 - first, z0 - first + sub.shape[0]), slice(r0, r0 + sub.shape[1]), slice(
            c0, c0 + sub.shape[2])
        if overlap:
            pixel_array[zs, rs, cs, number - 1] = sub
        else:
            pixel_array[zs, rs, cs][sub] = number
    descriptions = [_segment(number, name, colours, algorithm_type, algorithm_name)
                    for number, name in enumerate(names, start=1)]
    source = grid.datasets
    positions = [hd.PlanePositionSequence("PATIENT", [float(v) for v in source[i].ImagePositionPatient])
                 for i in frames]
    try:
        seg = hd.seg.Segmentation(
            source_images=source, pixel_array=pixel_array, segmentation_type="BINARY",
            segment_descriptions=descriptions, series_instance_uid=generate_uid(),
            series_number=int(series_number), sop_instance_uid=generate_uid(), instance_number=1,
            manufacturer="START-NET", manufacturer_model_name="startnet", software_versions=__version__,
            device_serial_number="0", series_description=series_description[:64],
            plane_orientation=hd.PlaneOrientationSequence(
                "PATIENT", [float(v) for v in source[0].ImageOrientationPatient]),
            pixel_measures=hd.PixelMeasuresSequence(
                [float(v) for v in source[0].PixelSpacing], grid.thickness_mm),
            plane_positions=positions, omit_empty_frames=True)
    except (ValueError, TypeError, AttributeError) as exc:
        raise DicomInputError(f"DICOM SEG export: highdicom refused the reference CT series: {exc}") from exc
    save_dataset_atomically(seg, Path(path))
    return seg


def _segment(number: int, name: str, colours, algorithm_type, algorithm_name) -> hd.seg.SegmentDescription:
    kind = algorithm_type.get(name, "SEMIAUTOMATIC") if isinstance(algorithm_type, Mapping) else algorithm_type
    kind = str(kind).upper()
    if kind not in ALGORITHM_TYPES:
        raise InputError(f"DICOM SEG export: algorithm type '{kind}' for '{name}' is not one of {ALGORITHM_TYPES}")
    identification = None
    if kind != "MANUAL":
        identification = hd.AlgorithmIdentificationSequence(
            name=algorithm_name[:64], family=codes.cid7162.ArtificialIntelligence
            if "ai" in algorithm_name.lower().split() else codes.cid7162.MorphologicalOperations,
            version=__version__)
    rgb = (colours or {}).get(name) or _DEFAULT_RGB.get(name.lower()) or _FALLBACK_RGB[(number - 1) % len(
        _FALLBACK_RGB)]
    category, prop = structure_codes(name)
    description = hd.seg.SegmentDescription(
        segment_number=number, segment_label=name[:64], segmented_property_category=category,
        segmented_property_type=prop, algorithm_type=kind, algorithm_identification=identification)
    # set directly: highdicom 0.22 (the last for Python 3.9 / Slicer 5.8) has no display_color argument
    description.RecommendedDisplayCIELabValue = dicom_cielab(rgb)
    return description


def segment_colours(names: Sequence[str]) -> Dict[str, Tuple[int, int, int]]:
    """The default display colour (RGB 0-255) used for each structure name."""
    return {name: _DEFAULT_RGB.get(name.lower(), _FALLBACK_RGB[i % len(_FALLBACK_RGB)])
            for i, name in enumerate(names)}
