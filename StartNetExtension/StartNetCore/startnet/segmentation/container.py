"""``Segmentation``: ordered named boolean masks on one reference grid, with colours.

Masks are numpy arrays in SimpleITK index order (z, y, x) on the grid of ``reference`` (a
SimpleITK image used for its geometry only). Segments may overlap (a tumour inside the liver);
``fractions`` optionally holds the fraction (0..1) of each reference voxel covered by a segment
when it was resampled from a finer grid.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.errors import GeometryError, InputError

# Other spellings of the structure names the pipeline uses (TotalSegmentator, Slicer terminology).
NAME_ALIASES = {
    "left kidney": "kidney_left", "kidney left": "kidney_left", "kidney_l": "kidney_left",
    "l_kidney": "kidney_left", "left_kidney": "kidney_left",
    "right kidney": "kidney_right", "kidney right": "kidney_right", "kidney_r": "kidney_right",
    "r_kidney": "kidney_right", "right_kidney": "kidney_right",
    "liver": "liver", "spleen": "spleen", "urinary bladder": "urinary_bladder",
}

DEFAULT_COLORS = {
    "kidney_left": (0.72, 0.31, 0.20), "kidney_right": (0.85, 0.40, 0.27), "liver": (0.87, 0.51, 0.36),
    "spleen": (0.62, 0.16, 0.32),
}


def canonical_name(name: str) -> str:
    """Pipeline name of a segment: TotalSegmentator/Slicer spellings mapped, case and blanks tidied."""
    text = " ".join(str(name).strip().lower().replace("-", " ").split())
    if text in NAME_ALIASES:
        return NAME_ALIASES[text]
    underscored = text.replace(" ", "_")
    return NAME_ALIASES.get(underscored, underscored)


def _palette(index: int) -> Tuple[float, float, float]:
    hue = (index * 0.61803398875) % 1.0
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, 0.65, 0.9))


def default_colour(name: str, index: int) -> Tuple[float, float, float]:
    """Display colour (RGB 0-1) of a structure: its usual colour, else the index-th palette colour."""
    return DEFAULT_COLORS.get(name, _palette(index))


@dataclass
class Segmentation:
    """Ordered name -> boolean mask (z, y, x) on ``reference``'s grid, with colours."""

    reference: sitk.Image
    masks: Dict[str, np.ndarray] = field(default_factory=dict)
    colors: Dict[str, Tuple[float, float, float]] = field(default_factory=dict)
    fractions: Dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    notes: List[str] = field(default_factory=list)  # what loading did (e.g. ROIs carved out of others)

    def __post_init__(self) -> None:
        shape = self.shape
        for name, mask in list(self.masks.items()):
            self._check(name, mask, shape)
            self.masks[name] = np.asarray(mask, dtype=bool)
            self.colors.setdefault(name, default_colour(name, len(self.colors)))

    @property
    def shape(self) -> Tuple[int, int, int]:
        size = self.reference.GetSize()
        return (size[2], size[1], size[0])

    @property
    def names(self) -> List[str]:
        return list(self.masks)

    @property
    def spacing_mm(self) -> Tuple[float, float, float]:
        """Voxel spacing (x, y, z) in mm, SimpleITK order."""
        return tuple(float(s) for s in self.reference.GetSpacing())

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.reference.GetSpacing())) / 1000.0

    def _check(self, name: str, mask: np.ndarray, shape) -> None:
        if tuple(np.shape(mask)) != tuple(shape):
            raise GeometryError(f"segment '{name}': mask shape {np.shape(mask)} does not match the reference "
                                f"grid (z, y, x) {tuple(shape)}")

    def add(self, name: str, mask: np.ndarray, color: Optional[Tuple[float, float, float]] = None,
            fraction: Optional[np.ndarray] = None) -> None:
        """Add (or replace) a segment; an empty mask is refused."""
        self._check(name, mask, self.shape)
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            raise InputError(f"segment '{name}' is empty; expected at least one voxel")
        self.masks[name] = mask
        self.colors[name] = tuple(color) if color is not None else DEFAULT_COLORS.get(
            name, self.colors.get(name, _palette(len(self.colors))))
        if fraction is not None:
            self.fractions[name] = np.asarray(fraction, dtype=np.float32)

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of ``name`` (also found by TotalSegmentator/Slicer spelling)."""
        if name in self.masks:
            return self.masks[name]
        canonical = canonical_name(name)
        for key in self.masks:
            if canonical_name(key) == canonical:
                return self.masks[key]
        raise InputError(f"segmentation {self.source or '(in memory)'} has no segment '{name}'; "
                         f"it has {self.names}")

    def mask_image(self, name: str) -> sitk.Image:
        """Segment as a uint8 SimpleITK image on the reference grid."""
        image = sitk.GetImageFromArray(self.mask(name).astype(np.uint8))
        image.CopyInformation(self.reference)
        return image

    def volume_ml(self, name: str) -> float:
        return float(self.mask(name).sum()) * self.voxel_volume_ml

    def labelmap(self) -> sitk.Image:
        """uint16 label image (segment i -> i + 1, later segments drawn over earlier ones)."""
        out = np.zeros(self.shape, dtype=np.uint16)
        for i, name in enumerate(self.names):
            out[self.masks[name]] = i + 1
        image = sitk.GetImageFromArray(out)
        image.CopyInformation(self.reference)
        return image
