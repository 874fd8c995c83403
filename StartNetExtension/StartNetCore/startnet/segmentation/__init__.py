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
* ``mask_on_grid(mask_image, reference) -> bool array``: a SPECT-grid mask on the CT grid (where
  Slicer edits segments); ``terminology_entry(name)``: Slicer's terminology tag of a standard name.
* ``RecoveryCurve`` and ``recovery_coefficient(volume_ml, camera="default")`` (partial volume).

Errors: InputError for a seed outside the body, an empty segment, an unknown label or name;
GeometryError for a seed outside the image or a segmentation that does not overlap the image.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "KidneySeedProposal": "startnet.segmentation.auto",
    "find_kidney_seeds": "startnet.segmentation.auto",
    "SegmentComparison": "startnet.segmentation.compare",
    "compare_segmentations": "startnet.segmentation.compare",
    "format_table": "startnet.segmentation.compare",
    "Segmentation": "startnet.segmentation.container",
    "canonical_name": "startnet.segmentation.container",
    "load_segmentation": "startnet.segmentation.io",
    "resample_mask": "startnet.segmentation.io",
    "mask_on_grid": "startnet.segmentation.grid",
    "terminology_entry": "startnet.segmentation.terminology",
    "RecoveryCurve": "startnet.segmentation.recovery",
    "load_recovery_curves": "startnet.segmentation.recovery",
    "recovery_coefficient": "startnet.segmentation.recovery",
    "sphere_recovery_coefficient": "startnet.segmentation.recovery",
    "SeededSegmentation": "startnet.segmentation.seeded",
    "segment_kidney_from_seed": "startnet.segmentation.seeded",
    "segment_organ_from_seed": "startnet.segmentation.seeded",
    "segment_tumour_from_seed": "startnet.segmentation.seeded",
}

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
    "mask_on_grid",
    "recovery_coefficient",
    "resample_mask",
    "segment_kidney_from_seed",
    "segment_organ_from_seed",
    "segment_tumour_from_seed",
    "sphere_recovery_coefficient",
    "terminology_entry",
]


def __getattr__(name):
    # imported on first use, so that ``startnet --help`` and other commands start quickly
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
