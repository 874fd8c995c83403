"""Automatic kidney seed proposal when no segmentation is given.

Anatomical prior: the kidneys are hot, compact soft-tissue blobs on either side of the spine
(lateral offset ``lateral_range_mm``), near the spine's antero-posterior level, within its
cranio-caudal extent. Candidates are local maxima of the smoothed SPECT in kidney-like tissue
(smoothed CT in the kidney HU window, not bone); each is grown with the kidney method and the
most plausible per side is kept; the proposed seed is the grown region's most central voxel.
Confidence:

* ``high``: grown volume in 80-350 mL and the two kidneys within 80 mm of each other in z;
* ``medium``: volume in 40-500 mL;
* ``low``: anything else (the user must check or place the seed).

The side follows LPS: +x is the patient's left. A side with no candidate is reported with
confidence ``none`` and no seed; the caller must then ask for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from startnet.errors import InputError
from startnet.segmentation.seeded import kidney_region, prepare_grid


@dataclass
class KidneySeedProposal:
    side: str  # "kidney_left" or "kidney_right"
    seed_lps: Optional[Tuple[float, float, float]]
    confidence: str  # high, medium, low, none
    volume_ml: float
    peak_bqml: float
    reason: str
    notes: List[str] = field(default_factory=list)


def _spine(bone: np.ndarray, spacing_x_mm: float, max_width_mm: float = 100.0,
           spacing_z_mm: Optional[float] = None, disc_bridge_mm: float = 20.0) -> np.ndarray:
    """The longest (in z) bone component narrower than ``max_width_mm`` (not the couch).

    With ``spacing_z_mm``, gaps up to ``disc_bridge_mm`` along z (intervertebral discs) are bridged
    first, so the vertebral bodies form one column.
    """
    if spacing_z_mm:
        reach = max(1, int(round(disc_bridge_mm / spacing_z_mm)))
        bridged = ndi.binary_dilation(bone, structure=np.ones((2 * reach + 1, 1, 1), bool))
        labels, count = ndi.label(bridged)
        labels[~bone] = 0
        extents = ndi.find_objects(labels, max_label=count)
    else:
        labels, count = ndi.label(bone)
        extents = ndi.find_objects(labels)
    best, best_length = 0, 0
    for label, extent in enumerate(extents, start=1):
        if extent is None:
            continue
        width_mm = (extent[2].stop - extent[2].start) * spacing_x_mm
        length = extent[0].stop - extent[0].start
        if width_mm <= max_width_mm and length > best_length:
            best, best_length = label, length
    if best == 0:
        raise InputError("automatic kidney seeds: no spine found on the CT (no long, narrow bone); "
                         "place kidney seeds by hand")
    return labels == best


def find_kidney_seeds(
    ct_hu: sitk.Image,
    spect_bqml: sitk.Image,
    *,
    lateral_range_mm: Tuple[float, float] = (35.0, 140.0),
    max_ap_offset_mm: float = 80.0,
    ct_range_hu: Tuple[float, float] = (-40.0, 42.0),
    candidates_per_side: int = 4,
) -> List[KidneySeedProposal]:
    """Propose one seed per kidney (left first) with the volume grown from it and a confidence."""
    ctx = prepare_grid(ct_hu, spect_bqml)
    spine = _spine(ctx.bone_fraction > 0.5, ctx.spacing_zyx[2], spacing_z_mm=ctx.spacing_zyx[0])
    spine_z = np.nonzero(spine.any(axis=(1, 2)))[0]
    sz, sy, sx = ctx.spacing_zyx
    spine_x = np.full(ctx.spect_arr.shape[0], np.nan)
    spine_y = np.full(ctx.spect_arr.shape[0], np.nan)
    for z in spine_z:
        ys, xs = np.nonzero(spine[z])
        spine_x[z], spine_y[z] = xs.mean(), ys.mean()
    smooth = ndi.gaussian_filter(ctx.spect_arr, 1.0)
    allowed = (ctx.ct_arr >= ct_range_hu[0]) & (ctx.ct_arr <= ct_range_hu[1]) & (ctx.bone_fraction < 0.2)
    peaks = (smooth == ndi.maximum_filter(smooth, size=3)) & allowed & (smooth > 0)
    # LPS +x is patient left; index x grows with +x for the usual identity direction
    direction_x = float(np.asarray(spect_bqml.GetDirection()).reshape(3, 3)[0, 0])
    candidates = {"kidney_left": [], "kidney_right": []}
    for z, y, x in np.argwhere(peaks):
        if np.isnan(spine_x[z]):
            continue
        dx_mm = (x - spine_x[z]) * sx * direction_x
        dy_mm = (y - spine_y[z]) * sy
        if not lateral_range_mm[0] <= abs(dx_mm) <= lateral_range_mm[1] or abs(dy_mm) > max_ap_offset_mm:
            continue
        side = "kidney_left" if dx_mm > 0 else "kidney_right"
        candidates[side].append((float(smooth[z, y, x]), (int(z), int(y), int(x))))
    proposals = []
    for side in ("kidney_left", "kidney_right"):
        ranked = sorted(candidates[side], reverse=True)[:candidates_per_side]
        best = None
        for peak, index in ranked:
            seed = spect_bqml.TransformIndexToPhysicalPoint((index[2], index[1], index[0]))
            try:
                region = kidney_region(ctx, index, seed, name=side, ct_range_hu=ct_range_hu)
            except InputError:
                continue
            plausible = 40.0 <= region.volume_ml <= 500.0
            key = (plausible, peak)
            if best is None or key > best[0]:
                best = (key, seed, region, peak)
        if best is None:
            proposals.append(KidneySeedProposal(side, None, "none", 0.0, 0.0,
                                                "no hot soft-tissue blob beside the spine; place a seed"))
            continue
        _, seed, region, peak = best
        # Propose the region's most central voxel rather than its hottest one (often a pole):
        # growing from the centre is what the seeded method was tuned for.
        inside = region.array
        centre = np.array(ndi.center_of_mass(inside))
        voxels = np.argwhere(inside)
        z, y, x = voxels[int(np.argmin(((voxels - centre) ** 2).sum(axis=1)))]
        seed = spect_bqml.TransformIndexToPhysicalPoint((int(x), int(y), int(z)))
        volume = region.volume_ml
        confidence = "high" if 80.0 <= volume <= 350.0 else "medium" if 40.0 <= volume <= 500.0 else "low"
        proposals.append(KidneySeedProposal(
            side, tuple(float(v) for v in seed), confidence, volume, peak,
            f"hottest compact kidney-density blob {'left' if side == 'kidney_left' else 'right'} of the spine "
            f"(peak {peak:.3g} Bq/mL, grown volume {volume:.0f} mL)"))
    found = [p for p in proposals if p.seed_lps is not None]
    if len(found) == 2 and abs(found[0].seed_lps[2] - found[1].seed_lps[2]) > 80.0:
        for p in found:
            if p.confidence == "high":
                p.confidence = "medium"
            p.notes.append("the two proposed kidneys are more than 80 mm apart in z")
    return proposals
