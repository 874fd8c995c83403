"""Kidney, tumour and organ segmentation on the reference grid, and segmentation comparison.

Contract used by the pipeline (images SimpleITK, LPS, mm; masks numpy (z, y, x) on the SPECT grid):

* ``segment_kidney_from_seed(ct_hu, spect_bqml, seed_lps, cortex_only=False, ...)``,
  ``segment_tumour_from_seed(ct_hu, spect_bqml, seed_lps, adaptive=True, ...)``,
  ``segment_organ_from_seed(ct_hu, spect_bqml, seed_lps, organ, ...)`` (liver, spleen)
  -> :class:`SeededSegmentation` (name, mask image, seed_lps, threshold_bqml, local_max_bqml,
  volume_ml, method, warnings; ``.array`` is the boolean mask).
* ``find_kidney_seeds(ct_hu, spect_bqml) -> list[KidneySeedProposal]`` (side, seed_lps,
  confidence high/medium/low/none, volume_ml, peak_bqml, reason, notes): the automatic path.
* ``load_segmentation(path, reference_image, labels=None, fractional=False) -> Segmentation``
  (.seg.nrrd incl. multi-layer, DICOM SEG, labelmap + names; TotalSegmentator names).
* :class:`Segmentation`: reference grid image, ordered ``masks`` name -> bool array, ``colors``,
  optional ``fractions``; ``mask(name)``, ``mask_image(name)``, ``volume_ml(name)``, ``labelmap()``.
* ``compare_segmentations(a, b, spacing_mm=None, dose_gy=None) -> list[SegmentComparison]``.
* ``RecoveryCurve`` and ``recovery_coefficient(volume_ml, camera="default")`` (partial volume).

Errors: InputError for a seed outside the body, an empty segment, an unknown label or name;
GeometryError for a seed outside the image or a segmentation that does not overlap the image.
"""

from __future__ import annotations

from startnet.segmentation.auto import KidneySeedProposal, find_kidney_seeds
from startnet.segmentation.compare import SegmentComparison, compare_segmentations, format_table
from startnet.segmentation.container import Segmentation, canonical_name
from startnet.segmentation.io import load_segmentation, resample_mask
from startnet.segmentation.recovery import (
    RecoveryCurve,
    load_recovery_curves,
    recovery_coefficient,
    sphere_recovery_coefficient,
)
from startnet.segmentation.seeded import (
    SeededSegmentation,
    segment_kidney_from_seed,
    segment_organ_from_seed,
    segment_tumour_from_seed,
)

__all__ = [
    "KidneySeedProposal",
    "RecoveryCurve",
    "SeededSegmentation",
    "SegmentComparison",
    "Segmentation",
    "canonical_name",
    "compare_segmentations",
    "find_kidney_seeds",
    "format_table",
    "load_recovery_curves",
    "load_segmentation",
    "recovery_coefficient",
    "resample_mask",
    "segment_kidney_from_seed",
    "segment_organ_from_seed",
    "segment_tumour_from_seed",
    "sphere_recovery_coefficient",
]
