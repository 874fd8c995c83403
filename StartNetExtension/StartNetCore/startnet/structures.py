"""The structures a run integrates over: boolean masks on the reference SPECT grid.

Either read from a file (``--segmentation``: .seg.nrrd, DICOM SEG, or a labelmap with a names
JSON) and resampled onto the reference grid, or found automatically (kidneys from SPECT uptake
constrained by CT), in which case the run says what it segmented.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from startnet.errors import GeometryError, InputError

KIDNEY_NAMES = ("kidney_left", "kidney_right")


@dataclass
class Structures:
    """Named masks (z, y, x) on the reference grid, in a stable order."""

    masks: OrderedDict[str, np.ndarray]
    source: str
    colours: Dict[str, tuple] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    log: List[str] = field(default_factory=list)

    def names(self) -> List[str]:
        return list(self.masks)

    def as_images(self, reference: sitk.Image) -> Dict[str, sitk.Image]:
        out = {}
        for name, mask in self.masks.items():
            image = sitk.GetImageFromArray(mask.astype(np.uint8))
            image.CopyInformation(reference)
            out[name] = image
        return out


def _read_labels(labels_path: Optional[str]) -> Optional[Dict[int, str]]:
    if not labels_path:
        return None
    path = Path(labels_path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: labels file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON object of label value -> structure name ({exc})") from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{path}: expected a JSON object mapping label value -> structure name")
    labels: Dict[int, str] = {}
    for key, name in raw.items():
        try:
            value = int(key)
        except ValueError:
            raise InputError(f"{path}: label key {key!r} is not an integer label value") from None
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{path}: label {key} has no structure name")
        labels[value] = name.strip()
    return labels


def structures_from_file(path: str, reference: sitk.Image, labels_path: Optional[str] = None) -> Structures:
    """Masks of a segmentation file on the reference grid; empty or non-overlapping -> clear error."""
    from startnet.segmentation import load_segmentation

    if not Path(path).exists():
        raise InputError(f"--segmentation {path}: file not found")
    segmentation = load_segmentation(path, reference, labels=_read_labels(labels_path))
    masks = OrderedDict((name, np.asarray(mask, dtype=bool)) for name, mask in segmentation.masks.items())
    empty = [name for name, mask in masks.items() if not mask.any()]
    if len(empty) == len(masks):
        raise GeometryError(f"--segmentation {path}: no structure overlaps the reference SPECT field of view; "
                            "is it in the patient coordinates of the reference time point?")
    warnings = [f"structure '{name}' from {Path(path).name} is empty on the reference grid and is skipped"
                for name in empty]
    for name in empty:
        del masks[name]
    colours = dict(getattr(segmentation, "colours", {}) or {})
    return Structures(masks, f"file: {Path(path).name}", colours, warnings)


def automatic_structures(ct_hu: Optional[sitk.Image], reference: sitk.Image) -> Structures:
    """Kidneys found from SPECT uptake and CT; says what it segmented and how confident it is."""
    from startnet.segmentation import find_kidney_seeds, segment_kidney_from_seed

    if ct_hu is None:
        raise InputError("no --segmentation given and the reference time point has no CT: automatic kidney "
                         "segmentation needs the CT; pass --segmentation FILE")
    seeds = find_kidney_seeds(ct_hu, reference)
    masks: OrderedDict[str, np.ndarray] = OrderedDict()
    log, warnings = [], []
    for name in KIDNEY_NAMES:
        seed = seeds.get(name) if isinstance(seeds, dict) else getattr(seeds, name, None)
        if seed is None:
            warnings.append(f"automatic segmentation found no {name.replace('_', ' ')}")
            continue
        seed_lps = getattr(seed, "point_lps", seed)
        segmented = segment_kidney_from_seed(ct_hu, reference, seed_lps)
        mask = np.asarray(getattr(segmented, "mask", segmented), dtype=bool)
        masks[name] = mask
        confidence = getattr(seed, "confidence", None)
        log.append(f"{name}: seed at {tuple(round(float(v), 1) for v in seed_lps)} mm (LPS), "
                   f"{int(mask.sum())} voxels" + (f", confidence {confidence}" if confidence is not None else ""))
    if not masks:
        raise InputError("automatic segmentation found no kidney; pass --segmentation FILE")
    warnings.append("structures were segmented automatically (" + "; ".join(log) + "); review them before "
                    "signing the report")
    return Structures(masks, "automatic kidney segmentation", {}, warnings, log)
