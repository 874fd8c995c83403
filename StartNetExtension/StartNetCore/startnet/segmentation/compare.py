"""Compare two segmentations segment by segment (observer A vs B, automatic vs reference).

Per segment present in both: Dice = 2|A∩B|/(|A|+|B|), Jaccard = |A∩B|/|A∪B|, volumes and their
difference (B - A, in mL and % of A), and surface distances. Surfaces are the boundary voxels
(mask minus its 6-connected erosion); the distance of each surface voxel of A to the nearest
surface voxel of B (and vice versa) is an exact Euclidean distance transform in mm.
HD95 = max of the two directed 95th percentiles (as in MedPy/ Plastimatch); mean surface
distance = mean of all distances of both directions (average symmetric surface distance).
With a dose map (Gy, same grid), mean dose in A and B and its change are reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from startnet.errors import GeometryError, InputError
from startnet.segmentation.container import Segmentation, canonical_name


@dataclass
class SegmentComparison:
    name: str
    volume_a_ml: float
    volume_b_ml: float
    volume_difference_ml: float
    volume_difference_percent: float
    dice: float
    jaccard: float
    hd95_mm: float
    mean_surface_distance_mm: float
    mean_dose_a_gy: Optional[float] = None
    mean_dose_b_gy: Optional[float] = None
    mean_dose_difference_gy: Optional[float] = None
    mean_dose_difference_percent: Optional[float] = None

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, border_value=0)


def surface_distances(a: np.ndarray, b: np.ndarray, spacing_zyx: Sequence[float]):
    """Directed surface distances (mm): A->B and B->A, on the common bounding box."""
    both = a | b
    coords = np.argwhere(both)
    low = np.maximum(coords.min(axis=0) - 2, 0)
    high = coords.max(axis=0) + 3
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
    sa, sb = _surface(a[box]), _surface(b[box])
    to_b = ndi.distance_transform_edt(~sb, sampling=spacing_zyx)
    to_a = ndi.distance_transform_edt(~sa, sampling=spacing_zyx)
    return to_b[sa], to_a[sb]


def _as_masks(seg: Union[Segmentation, Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    if isinstance(seg, Segmentation):
        return dict(seg.masks)
    return {str(k): np.asarray(v, dtype=bool) for k, v in seg.items()}


def compare_segmentations(
    a: Union[Segmentation, Mapping[str, np.ndarray]],
    b: Union[Segmentation, Mapping[str, np.ndarray]],
    spacing_mm: Optional[Sequence[float]] = None,
    dose_gy: Optional[Union[np.ndarray, sitk.Image]] = None,
) -> List[SegmentComparison]:
    """Compare the segments that ``a`` and ``b`` share (names matched via canonical spelling).

    ``spacing_mm`` is (x, y, z) as SimpleITK reports it; it may be omitted when ``a`` is a
    :class:`Segmentation`. Masks (and ``dose_gy``) must be on the same grid (z, y, x arrays).
    """
    if spacing_mm is None:
        if not isinstance(a, Segmentation):
            raise InputError("compare_segmentations: spacing_mm (x, y, z) is required for plain mask arrays")
        spacing_mm = a.spacing_mm
    if len(spacing_mm) != 3 or min(spacing_mm) <= 0:
        raise InputError(f"compare_segmentations: spacing_mm must be three positive values, got {spacing_mm}")
    spacing_zyx = (float(spacing_mm[2]), float(spacing_mm[1]), float(spacing_mm[0]))
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    masks_a, masks_b = _as_masks(a), _as_masks(b)
    by_name_b = {canonical_name(n): n for n in masks_b}
    pairs = [(n, by_name_b[canonical_name(n)]) for n in masks_a if canonical_name(n) in by_name_b]
    if not pairs:
        raise InputError(f"compare_segmentations: no segment name in common (A: {list(masks_a)}, "
                         f"B: {list(masks_b)})")
    dose = None
    if dose_gy is not None:
        dose = sitk.GetArrayFromImage(dose_gy) if isinstance(dose_gy, sitk.Image) else np.asarray(dose_gy)
    results = []
    for name_a, name_b in pairs:
        ma, mb = masks_a[name_a], masks_b[name_b]
        if ma.shape != mb.shape:
            raise GeometryError(f"segment '{name_a}': A has grid {ma.shape}, B {mb.shape} (z, y, x); "
                                "resample both onto one reference grid first")
        for label, m in (("A", ma), ("B", mb)):
            if not m.any():
                raise InputError(f"segment '{name_a}' is empty in segmentation {label}")
        inter = float(np.logical_and(ma, mb).sum())
        union = float(np.logical_or(ma, mb).sum())
        na, nb = float(ma.sum()), float(mb.sum())
        d_ab, d_ba = surface_distances(ma, mb, spacing_zyx)
        vol_a, vol_b = na * voxel_ml, nb * voxel_ml
        row = SegmentComparison(
            name=canonical_name(name_a), volume_a_ml=vol_a, volume_b_ml=vol_b,
            volume_difference_ml=vol_b - vol_a, volume_difference_percent=100.0 * (vol_b - vol_a) / vol_a,
            dice=2.0 * inter / (na + nb), jaccard=inter / union,
            hd95_mm=float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))),
            mean_surface_distance_mm=float(np.concatenate([d_ab, d_ba]).mean()))
        if dose is not None:
            if dose.shape != ma.shape:
                raise GeometryError(f"dose map grid {dose.shape} differs from the segmentation grid {ma.shape}")
            da, db = float(dose[ma].mean()), float(dose[mb].mean())
            row.mean_dose_a_gy, row.mean_dose_b_gy = da, db
            row.mean_dose_difference_gy = db - da
            row.mean_dose_difference_percent = 100.0 * (db - da) / da if da != 0 else float("nan")
        results.append(row)
    return results


def format_table(rows: List[SegmentComparison]) -> str:
    """Plain-text table of a comparison (the CLI and logs)."""
    with_dose = any(r.mean_dose_a_gy is not None for r in rows)
    header = ["segment", "Dice", "Jaccard", "HD95 mm", "MSD mm", "V_A ml", "V_B ml", "dV ml", "dV %"]
    if with_dose:
        header += ["D_A Gy", "D_B Gy", "dD Gy", "dD %"]
    lines = []
    for r in rows:
        cells = [r.name, f"{r.dice:.3f}", f"{r.jaccard:.3f}", f"{r.hd95_mm:.1f}", f"{r.mean_surface_distance_mm:.2f}",
                 f"{r.volume_a_ml:.1f}", f"{r.volume_b_ml:.1f}", f"{r.volume_difference_ml:+.1f}",
                 f"{r.volume_difference_percent:+.1f}"]
        if with_dose:
            cells += [f"{r.mean_dose_a_gy:.3f}", f"{r.mean_dose_b_gy:.3f}", f"{r.mean_dose_difference_gy:+.3f}",
                      f"{r.mean_dose_difference_percent:+.1f}"]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in lines]
    return "\n".join(out)
