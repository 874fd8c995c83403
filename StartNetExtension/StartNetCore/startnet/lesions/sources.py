"""Where a cycle's lesions come from: a ``startnet run`` output folder or a run in memory; CT-to-CT transforms.

A run folder gives its tumour segments through ``seg.dcm`` (the DICOM SEG the run wrote on its dose
grid) read onto ``dose.nrrd``'s grid, their values from ``results.json`` and its CT on the dose grid
(``ct_on_dose_grid.nrrd``) for registration. Tumour segments are those whose name denotes a tumour
(:func:`startnet.structure_kinds.structure_kind`: tumour, tumor, lesion, met...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.errors import InputError
from startnet.lesions.track import CycleLesions
from startnet.structure_kinds import TUMOUR, structure_kind

SEG_FILE = "seg.dcm"


def tumour_names(names) -> List[str]:
    return [n for n in names if structure_kind(n) == TUMOUR]


def recorded_ids(results: Mapping[str, Any]) -> Optional[Dict[str, str]]:
    """segment -> lesion ID a result already carries (``results["lesions"]["segments"]``), else None."""
    lesions = results.get("lesions")
    if isinstance(lesions, dict) and isinstance(lesions.get("segments"), dict):
        return {str(k): str(v) for k, v in lesions["segments"].items()}
    return None


def cycle_from_memory(cycle: int, label: str, grid: sitk.Image, masks: Mapping[str, np.ndarray],
                      results: Mapping[str, Any], overrides: Optional[Dict[str, str]] = None) -> CycleLesions:
    """A run's tumour segments as ``run_cycle`` holds them (masks on the reference = dose grid)."""
    structures = results.get("structures") or {}
    names = [n for n in tumour_names(masks) if n in structures and np.any(masks[n])]
    return CycleLesions(cycle, label, grid, {n: np.asarray(masks[n], bool) for n in names},
                        {n: dict(structures[n]) for n in names}, overrides=dict(overrides or {}))


def cycle_from_folder(folder: Path, cycle: int, results: Mapping[str, Any], dose_grid: sitk.Image,
                      assigned: Optional[Dict[str, str]] = None,
                      overrides: Optional[Dict[str, str]] = None) -> CycleLesions:
    """A run folder's tumour segments (``seg.dcm`` on the dose grid) with their results."""
    from startnet.segmentation.io import load_segmentation

    structures = results.get("structures") or {}
    wanted = tumour_names(structures)
    masks: Dict[str, np.ndarray] = {}
    if wanted:
        seg = folder / SEG_FILE
        if not seg.is_file():
            raise InputError(f"{folder}: no {SEG_FILE}; the tumour segments of this cycle ({', '.join(wanted)}) are "
                             "needed to track lesions (re-run 'startnet run' with the reference CT's DICOM)")
        segmentation = load_segmentation(seg, dose_grid, canonical_names=False)
        missing = [n for n in wanted if n not in segmentation.masks]
        if missing:
            raise InputError(f"{seg}: segment(s) {', '.join(missing)} of results.json are not in the DICOM SEG")
        masks = {n: segmentation.masks[n] for n in wanted}
    return CycleLesions(cycle, str(folder), dose_grid, masks, {n: dict(structures[n]) for n in wanted},
                        assigned=assigned, overrides=dict(overrides or {}))


class ComposedTransforms:
    """this -> that cycle from transforms reference -> each cycle (as ``startnet accumulate`` registers)."""

    def __init__(self, to_cycle: Sequence[sitk.Transform]):
        self.to_cycle = list(to_cycle)

    def __call__(self, this: int, that: int) -> sitk.Transform:
        return sitk.CompositeTransform([self.to_cycle[that], self.to_cycle[this].GetInverse()])


class PairwiseRegistration:
    """this -> that cycle by rigid CT-to-CT registration (this cycle's CT fixed), each pair once."""

    def __init__(self, cts: Sequence[Optional[sitk.Image]], labels: Sequence[str]):
        self.cts = list(cts)
        self.labels = list(labels)
        self.records: List[Dict[str, Any]] = []
        self.warnings: List[str] = []
        self._cache: Dict[Tuple[int, int], sitk.Transform] = {}

    def __call__(self, this: int, that: int) -> sitk.Transform:
        from startnet.registration import register_rigid

        if (this, that) not in self._cache:
            fixed, moving = self.cts[this], self.cts[that]
            if fixed is None or moving is None:
                raise InputError(f"lesion tracking: {self.labels[this if fixed is None else that]} has no CT on "
                                 "its dose grid; cycles are matched through their CTs")
            result = register_rigid(fixed, moving)
            self._cache[(this, that)] = result.transform
            self.records.append({"from": self.labels[this], "to": self.labels[that],
                                 "translation_mm": [round(float(v), 2) for v in result.translation_mm],
                                 "rotation_deg": [round(float(v), 3) for v in result.rotation_deg],
                                 "implausible": bool(result.implausible)})
            if result.implausible:
                self.warnings.append(f"registration of {self.labels[that]} onto {self.labels[this]} implausible "
                                     f"({result.implausible_reason}); check the lesion matches")
        return self._cache[(this, that)]


def read_lesion_map(path: Optional[str]) -> Dict[str, Dict[str, str]]:
    """``--lesion-map FILE``: {"<cycle>": {"segment": "L2", ...}} (or one flat {"segment": "L2"} for a run).

    A flat map is returned under the key ``"*"`` (the one cycle being run).
    """
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"--lesion-map {path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"--lesion-map {path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"--lesion-map {path}: expected an object {{segment: lesion ID}} or "
                         "{cycle: {segment: lesion ID}}")
    if all(isinstance(v, str) for v in data.values()):
        return {"*": dict(data)}
    out: Dict[str, Dict[str, str]] = {}
    for key, mapping in data.items():
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise InputError(f"--lesion-map {path}: cycle {key!r} must map segment names to lesion IDs (strings)")
        try:
            out[str(int(key))] = dict(mapping)
        except ValueError:
            raise InputError(f"--lesion-map {path}: key {key!r} is not a cycle number") from None
    return out
