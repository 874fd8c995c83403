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
    fractions: Dict[str, np.ndarray] = field(default_factory=dict)
    ct_masses_g: Dict[str, float] = field(default_factory=dict)  # from the CT at its own resolution

    def names(self) -> List[str]:
        return list(self.masks)

    def fraction_maps(self) -> Dict[str, np.ndarray]:
        """Share of each voxel inside each structure (the binary mask where no fraction is known)."""
        return OrderedDict((name, self.fractions[name] if name in self.fractions else mask.astype(np.float32))
                           for name, mask in self.masks.items())

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


def resolve_contested_voxels(masks: OrderedDict[str, np.ndarray], fractions: Dict[str, np.ndarray]
                             ) -> OrderedDict[str, np.ndarray]:
    """Give a SPECT voxel claimed by several (majority) masks to one structure only.

    A voxel split half and half between two structures is in both majority masks; it goes to the
    structure with the larger share, on a tie to the smaller structure (a kidney before the body
    remainder). Structures that genuinely overlap (a kidney and its cortex) are left as they are.
    """
    from startnet.cycle.quantify import overlapping

    shares = OrderedDict((n, fractions.get(n, m.astype(np.float32))) for n, m in masks.items())
    if len(masks) < 2 or overlapping(shares):
        return masks
    names = list(masks)
    claims = np.sum([masks[n] for n in names], axis=0)
    contested = claims > 1
    if not contested.any():
        return masks
    sizes = np.array([float(shares[n].sum()) for n in names])
    stacked = np.stack([np.where(masks[n][contested], shares[n][contested], -1.0) for n in names])
    # largest share wins; among equal shares the smallest structure (tiny offset by size rank)
    rank = np.argsort(np.argsort(sizes))
    stacked = stacked - 1e-6 * rank[:, None]
    winner = np.argmax(stacked, axis=0)
    resolved = OrderedDict()
    for index, name in enumerate(names):
        mask = masks[name].copy()
        mask[contested] = winner == index
        resolved[name] = mask
    return resolved


def ct_masses_g(path: str, ct_hu: sitk.Image, labels, segments=None) -> Dict[str, float]:
    """Mass of each segment from the CT at the CT's own resolution (density from HU)."""
    from startnet.dosimetry import hu_to_density_g_per_ml
    from startnet.segmentation import load_segmentation

    on_ct = load_segmentation(path, ct_hu, labels=labels, segments=segments)
    density = hu_to_density_g_per_ml(sitk.GetArrayViewFromImage(ct_hu))
    voxel_ml = float(np.prod(ct_hu.GetSpacing())) / 1000.0
    return {name: float(density[mask].sum(dtype=np.float64)) * voxel_ml for name, mask in on_ct.masks.items()}


def structures_from_file(path: str, reference: sitk.Image, labels_path: Optional[str] = None,
                         ct_hu: Optional[sitk.Image] = None, *, ct_series: Optional[Dict[str, str]] = None,
                         reference_ct_series_uid: Optional[str] = None) -> Structures:
    """Masks of a segmentation file on the reference grid; empty or non-overlapping -> clear error.

    With the reference CT, structure masses are taken from the CT at its own resolution, which
    avoids mixing tissues of different density in border voxels of the coarse SPECT grid. A DICOM
    RTSTRUCT is rasterised onto the reference CT, which must be the CT it references (``ct_series``:
    the cycle's CT series UID -> which time point, for the message when it is not).
    """
    if not Path(path).exists():
        raise InputError(f"--segmentation {path}: file not found")
    from startnet.segmentation.io import _is_dicom, read_segments

    labels = _read_labels(labels_path)
    grid = None
    if _is_dicom(Path(path)):
        from startnet.segmentation.rtstruct import check_referenced_ct, is_rtstruct, read_rtstruct

        if is_rtstruct(path):
            if ct_hu is None:
                raise InputError(f"--segmentation {path}: an RTSTRUCT needs the CT it was drawn on, and the "
                                 "reference time point has no CT")
            check_referenced_ct(read_rtstruct(path), ct_series or {}, reference_ct_series_uid)
            grid = ct_hu
    segments = read_segments(path, labels, grid=grid)
    structures = structures_from_segments(segments, reference, ct_hu=ct_hu, where=str(path),
                                          source=f"file: {Path(path).name}", option="--segmentation ")
    structures.log += list(getattr(segments, "notes", []))
    structures.warnings += list(getattr(segments, "warnings", []))
    return structures


def structures_from_segments(segments, reference: sitk.Image, *, ct_hu: Optional[sitk.Image] = None,
                             where: str = "segmentation", source: str = "segmentation",
                             option: str = "") -> Structures:
    """Structures on the reference grid from segments in memory: (name, mask image, colour or None).

    Each mask image is on its own grid (e.g. the reference CT's, as a Slicer segmentation holds
    it); it is resampled onto ``reference`` with each voxel's share (fractions), contested voxels
    go to one structure, and with ``ct_hu`` the masses come from the CT at its own resolution.
    ``where`` names the segmentation in messages, ``source`` is recorded in the results.
    """
    from startnet.segmentation import load_segmentation

    segmentation = load_segmentation(where, reference, fractional=True, segments=segments)
    masks = OrderedDict((name, np.asarray(mask, dtype=bool)) for name, mask in segmentation.masks.items())
    empty = [name for name, mask in masks.items() if not mask.any()]
    if len(empty) == len(masks):
        raise GeometryError(f"{option}{where}: no structure overlaps the reference SPECT field of view; "
                            "is it in the patient coordinates of the reference time point?")
    warnings = [f"structure '{name}' from {Path(where).name} is empty on the reference grid and is skipped"
                for name in empty]
    for name in empty:
        del masks[name]
    colours = dict(segmentation.colors)
    fractions = {name: np.asarray(segmentation.fractions[name], np.float32)
                 for name in masks if name in segmentation.fractions}
    masks = resolve_contested_voxels(masks, fractions)
    masses = {}
    if ct_hu is not None:
        masses = {name: mass for name, mass in ct_masses_g(where, ct_hu, None, segments).items()
                  if name in masks and mass > 0}
    return Structures(masks, source, colours, warnings, fractions=fractions, ct_masses_g=masses)


def automatic_structures(ct_hu: Optional[sitk.Image], reference: sitk.Image) -> Structures:
    """Kidneys found from SPECT uptake and CT; says what it segmented and how confident it is."""
    from startnet.segmentation import find_kidney_seeds, segment_kidney_from_seed

    if ct_hu is None:
        raise InputError("no --segmentation given and the reference time point has no CT: automatic kidney "
                         "segmentation needs the CT; pass --segmentation FILE")
    masks: OrderedDict[str, np.ndarray] = OrderedDict()
    log, warnings = [], []
    for proposal in find_kidney_seeds(ct_hu, reference):
        if proposal.seed_lps is None:
            warnings.append(f"automatic segmentation found no {proposal.side.replace('_', ' ')}: {proposal.reason}")
            continue
        segmented = segment_kidney_from_seed(ct_hu, reference, proposal.seed_lps)
        masks[proposal.side] = np.asarray(segmented.array, dtype=bool)
        log.append(f"{proposal.side}: seed at {tuple(round(float(v), 1) for v in proposal.seed_lps)} mm (LPS), "
                   f"{segmented.volume_ml:.0f} mL, confidence {proposal.confidence} ({proposal.reason})")
        warnings += [f"{proposal.side}: {w}" for w in segmented.warnings]
    if not masks:
        raise InputError("automatic segmentation found no kidney; pass --segmentation FILE")
    warnings.append("structures were segmented automatically (" + "; ".join(log) + "); review them before "
                    "signing the report")
    return Structures(masks, "automatic kidney segmentation", {}, warnings, log)
