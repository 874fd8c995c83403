"""Structures step from masks in memory: what a Slicer segmentation node provides.

Masks (or one labelmap with its names) on their own grid, usually the reference CT's, go through
the same path as a segmentation file (:func:`startnet.cycle.structures.structures_from_segments`):
resampled onto the reference SPECT grid with each voxel's share, contested voxels given to one
structure, masses from the CT at its own resolution.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.cycle.structures import Structures, structures_from_segments
from startnet.errors import InputError

Colour = Tuple[float, float, float]


def _checked(image, what: str) -> sitk.Image:
    if not isinstance(image, sitk.Image) or image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what}: expected a scalar 3D SimpleITK image")
    return image


def structures_from_masks(masks: Mapping[str, sitk.Image], reference: sitk.Image, *,
                          ct_hu: Optional[sitk.Image] = None, colours: Optional[Mapping[str, Colour]] = None,
                          source: str = "segmentation in memory") -> Structures:
    """Structures on ``reference``'s grid from name -> mask image (non-zero = inside), in the given order."""
    if not masks:
        raise InputError(f"{source}: no segments; expected at least one named mask")
    colours = colours or {}
    segments: List[Tuple[str, sitk.Image, Optional[Colour]]] = []
    for name, image in masks.items():
        mask = sitk.Cast(_checked(image, f"{source}: segment '{name}'") != 0, sitk.sitkUInt8)
        segments.append((str(name), mask, colours.get(name)))
    return structures_from_segments(segments, reference, ct_hu=ct_hu, where=source, source=source)


def structures_from_labelmap(labelmap: sitk.Image, names: Mapping[int, str], reference: sitk.Image, *,
                             ct_hu: Optional[sitk.Image] = None, colours: Optional[Mapping[str, Colour]] = None,
                             source: str = "labelmap in memory") -> Structures:
    """Structures from a labelmap image and label value -> structure name (values not named are ignored)."""
    _checked(labelmap, source)
    values = sitk.GetArrayViewFromImage(labelmap)
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise InputError(f"{source}: labelmap values must be non-negative integers")
    if values.size and values.min() < 0:
        raise InputError(f"{source}: labelmap values must be non-negative integers")
    if not names:
        raise InputError(f"{source}: no label names; expected label value -> structure name")
    present = set(int(v) for v in np.unique(values))
    masks: Dict[str, sitk.Image] = {}
    for value, name in names.items():
        if int(value) not in present:
            raise InputError(f"{source}: label {value} ('{name}') does not occur in the labelmap; "
                             f"labels present: {sorted(present - {0})}")
        masks[name] = sitk.Cast(labelmap == int(value), sitk.sitkUInt8)
    return structures_from_masks(masks, reference, ct_hu=ct_hu, colours=colours, source=source)
