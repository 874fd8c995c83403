"""Match one cycle's tumour segments to the patient's known lesions: overlap, centroid distance, one-to-one.

All masks are on one grid (the current cycle's dose grid; earlier lesions are mapped onto it with
the CT-to-CT registration before they get here). For each (lesion, segment) pair:

* ``overlap_fraction`` = |A and B| / min(|A|, |B|): 1 when a shrunken lesion lies inside its earlier
  extent, where the Dice coefficient (also recorded) would only reflect the volume change;
* ``centroid_distance_mm`` between the two masks' centres (physical mm).

A pair is a candidate when ``overlap_fraction >= min_overlap`` or ``centroid_distance_mm <=
max_centroid_mm`` (:class:`MatchRule`). Among candidates the assignment is one-to-one and
maximises the summed score ``overlap_fraction + max(0, 1 - distance / max_centroid_mm)``
(Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``), so two segments never claim one
lesion and a lesion split in two keeps its identity on the better-fitting part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.errors import InputError


@dataclass(frozen=True)
class MatchRule:
    """When a segment is the same lesion as an earlier one (see the module doc)."""

    min_overlap: float = 0.3
    max_centroid_mm: float = 15.0

    def __post_init__(self) -> None:
        if not 0.0 < self.min_overlap <= 1.0:
            raise InputError(f"lesion match rule: min_overlap {self.min_overlap} must be in (0, 1]")
        if not self.max_centroid_mm > 0.0:
            raise InputError(f"lesion match rule: max_centroid_mm {self.max_centroid_mm} must be > 0 mm")

    def describe(self) -> Dict[str, object]:
        return {"min_overlap_fraction": self.min_overlap, "max_centroid_distance_mm": self.max_centroid_mm,
                "rule": (f"same lesion when overlap_fraction >= {self.min_overlap:g} or centroid distance <= "
                         f"{self.max_centroid_mm:g} mm; overlap_fraction = |A and B| / min(|A|, |B|) with the "
                         "earlier lesion mapped onto this cycle's grid by the CT-to-CT registration; one-to-one "
                         "by maximum summed score overlap_fraction + max(0, 1 - distance / max distance) "
                         "(Hungarian algorithm)")}


def centroid_mm(mask: np.ndarray, grid: sitk.Image) -> Tuple[float, float, float]:
    """Physical centre (LPS mm) of a (z, y, x) boolean mask on ``grid``."""
    index_zyx = np.argwhere(mask)
    if index_zyx.size == 0:
        raise InputError("lesion match: an empty mask has no centre")
    mean_xyz = [float(v) for v in index_zyx.mean(axis=0)[::-1]]
    return tuple(float(v) for v in grid.TransformContinuousIndexToPhysicalPoint(mean_xyz))


def pair_metrics(earlier: np.ndarray, current: np.ndarray, grid: sitk.Image) -> Dict[str, float]:
    """Dice, overlap fraction and centroid distance of two masks on ``grid``."""
    a, b = int(earlier.sum()), int(current.sum())
    both = int(np.logical_and(earlier, current).sum())
    distance = (float(np.linalg.norm(np.subtract(centroid_mm(earlier, grid), centroid_mm(current, grid))))
                if a and b else float("inf"))
    return {"dice": round(2.0 * both / (a + b), 4) if a + b else 0.0,
            "overlap_fraction": round(both / min(a, b), 4) if a and b else 0.0,
            "centroid_distance_mm": round(distance, 2)}


def score(metrics: Mapping[str, float], rule: MatchRule) -> float:
    return float(metrics["overlap_fraction"]) + max(0.0, 1.0 - float(metrics["centroid_distance_mm"])
                                                    / rule.max_centroid_mm)


def is_candidate(metrics: Mapping[str, float], rule: MatchRule) -> bool:
    return (float(metrics["overlap_fraction"]) >= rule.min_overlap
            or float(metrics["centroid_distance_mm"]) <= rule.max_centroid_mm)


def assign(metrics: Mapping[Tuple[str, str], Mapping[str, float]], lesions: List[str], segments: List[str],
           rule: MatchRule) -> Dict[str, str]:
    """segment -> lesion for the one-to-one candidate assignment of maximum summed score."""
    from scipy.optimize import linear_sum_assignment

    if not lesions or not segments:
        return {}
    gain = np.zeros((len(lesions), len(segments)))
    for i, lesion in enumerate(lesions):
        for j, segment in enumerate(segments):
            m = metrics.get((lesion, segment))
            if m is not None and is_candidate(m, rule):
                gain[i, j] = score(m, rule) + 1.0  # every candidate beats "no match" (0)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    return {segments[j]: lesions[i] for i, j in zip(rows, cols) if gain[i, j] > 0}
