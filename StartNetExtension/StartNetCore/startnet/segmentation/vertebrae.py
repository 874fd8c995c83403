"""Lumbar vertebral bodies L2-L4 from the CT: a simple, documented heuristic for the marrow VOI.

Steps (on the CT's own grid):

1. Bone: CT >= ``BONE_HU``. The spine column is the bone component longest along the patient axis
   and narrower than ``MAX_SPINE_WIDTH_MM`` (not the couch, not the pelvis), after bridging gaps of up
   to ``DISC_BRIDGE_MM`` along z (the discs) so that the column is one component.
2. Vertebral bodies: the column's bone area per axial slice; runs of slices with at least half the
   column's median area are bodies, the dips between them the discs. Runs shorter than
   ``MIN_BODY_MM`` are dropped. Each body is its bone voxels with the holes of each slice filled
   (low-density cancellous bone inside the cortex).
3. Level: the kidneys' centroids lie at about L1-L2, so L2 is taken as the first body whose centre
   is caudal to the kidneys' mean centroid level; L3 and L4 follow caudally.

Limits (why given segments are preferred for patients): posterior elements joining the vertebrae
at the discs, a fused or collapsed vertebra, a transitional vertebra or kidneys out of place
(ptosis, a transplant) defeat it. Segments named ``vertebra_L2..L4`` (e.g. TotalSegmentator's
``vertebrae_L2..L4`` in Slicer) or ``marrow`` in ``--segmentation`` take precedence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from startnet.errors import InputError

BONE_HU = 200.0
MAX_SPINE_WIDTH_MM = 100.0
DISC_BRIDGE_MM = 20.0
MIN_BODY_MM = 10.0
LEVELS = ("L2", "L3", "L4")
SUPPLY = ("supply segments vertebra_L2, vertebra_L3, vertebra_L4 (e.g. TotalSegmentator vertebrae_L2..L4) or "
          "marrow in --segmentation")


@dataclass
class VertebraeFromCt:
    masks: Dict[str, sitk.Image]  # "L2".. -> UInt8 mask on the CT grid
    centres_z_mm: Dict[str, float]
    notes: List[str] = field(default_factory=list)


def _column(bone: np.ndarray, spacing_xyz) -> np.ndarray:
    sx, _, sz = spacing_xyz
    reach = max(1, int(round(DISC_BRIDGE_MM / sz)))
    bridged = ndi.binary_dilation(bone, structure=np.ones((2 * reach + 1, 1, 1), bool))
    labels, _ = ndi.label(bridged)
    best, best_length = 0, 0
    for label, extent in enumerate(ndi.find_objects(labels), start=1):
        if extent is None:
            continue
        width_mm = (extent[2].stop - extent[2].start) * sx
        length = extent[0].stop - extent[0].start
        if width_mm <= MAX_SPINE_WIDTH_MM + 2 * sx and length > best_length:
            best, best_length = label, length
    if best == 0:
        raise InputError(f"marrow VOI from the CT: no spine found (no long, narrow bone >= {BONE_HU:g} HU); {SUPPLY}")
    return bone & (labels == best)


def _runs(flags: np.ndarray) -> List[tuple]:
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]))


def lumbar_vertebrae_from_ct(ct_hu: sitk.Image, kidney_centroid_z_mm: float) -> VertebraeFromCt:
    """L2, L3, L4 vertebral-body masks on the CT grid (module docstring); InputError naming what to supply."""
    direction = np.asarray(ct_hu.GetDirection()).reshape(3, 3)
    if not np.allclose(np.abs(direction), np.eye(3), atol=1e-3):
        raise InputError(f"marrow VOI from the CT: the CT is not axial (direction {tuple(ct_hu.GetDirection())}); "
                         f"{SUPPLY}")
    spacing = ct_hu.GetSpacing()
    bone = sitk.GetArrayViewFromImage(ct_hu) >= BONE_HU
    column = _column(bone, spacing)
    area = column.sum(axis=(1, 2))
    present = area > 0
    if not present.any():
        raise InputError(f"marrow VOI from the CT: no spine found; {SUPPLY}")
    threshold = 0.5 * float(np.median(area[present]))
    bodies = []
    for start, stop in _runs(area >= threshold):
        if (stop - start) * spacing[2] < MIN_BODY_MM:
            continue
        centre = ct_hu.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, 0.5 * (start + stop - 1)))[2]
        bodies.append((centre, start, stop))
    # cranial (+z in LPS) to caudal
    caudal = sorted((b for b in bodies if b[0] < kidney_centroid_z_mm), key=lambda b: -b[0])
    if len(caudal) < len(LEVELS):
        raise InputError(f"marrow VOI from the CT: {len(caudal)} vertebral bod{'y' if len(caudal) == 1 else 'ies'} "
                         f"found caudal to the kidneys' level (z {kidney_centroid_z_mm:.0f} mm), 3 needed; {SUPPLY}")
    masks, centres = {}, {}
    for level, (centre, start, stop) in zip(LEVELS, caudal):
        array = np.zeros(column.shape, np.uint8)
        for k in range(start, stop):
            array[k] = ndi.binary_fill_holes(column[k])
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(ct_hu)
        masks[level], centres[level] = image, float(centre)
    notes = [f"marrow VOI from the CT: {len(bodies)} vertebral bodies on the column (bone >= {BONE_HU:g} HU, area "
             f">= half the median); L2 = first caudal to the kidneys' mean centroid (z {kidney_centroid_z_mm:.1f} mm); "
             + ", ".join(f"{lv} centre z {centres[lv]:.1f} mm" for lv in LEVELS)]
    return VertebraeFromCt(masks, centres, notes)
