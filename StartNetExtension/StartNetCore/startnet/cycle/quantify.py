"""Structure activity from SPECT with partial-volume correction.

Two methods, recorded in the results:

``gtm`` (default when the structures do not overlap): the geometric transfer matrix of Rousset
et al. (J Nucl Med 1998;39:904). Every structure j (and the rest of the body as one background
region) is taken as uniform with unknown concentration c_j; blurring the structure's voxel
fraction map f_j with the camera PSF predicts what each structure's VOI measures:

    measured_i = sum_v f_i(v) y(v) / sum_v f_i(v) = sum_j GTM_ij c_j,
    GTM_ij = sum_v f_i(v) (PSF * f_j)(v) / sum_v f_i(v).

Solving for c (non-negative least squares) estimates every structure's concentration with
spill-out and spill-in between structures removed. Voxel fractions come from the segmentation at
its own resolution (``load_segmentation(..., fractional=True)``) so SPECT voxels straddling a
border count for the share each structure has of them.

The activity of a structure is then counted in its VOI enlarged by ``enlarged_voi_fwhm`` PSF
widths (default 1.5: practically all of its blurred counts), minus what the other structures
spill into that VOI according to their GTM concentrations, divided by the share of its own
blurred counts the VOI holds. Unlike c_j * volume, this does not assume uniform uptake inside
the structure: a kidney whose activity sits in the cortex spills more out of its own outline
than a uniform one would, and plain GTM under-estimates it (by 7-10 % on the phantom at 7 mm
voxels; -1 % with the enlarged VOI). ``enlarged_voi_fwhm=0`` gives plain GTM. The enlarged VOI
is used for a structure only when the regional model explains the counts in the outer ring of the
enlarged VOI (beyond one FWHM from the outline, where the structure's own spill-out is negligible
whatever its inner distribution) within ``RING_TOLERANCE`` (counts summed over the time points); an unsegmented
hot neighbour (e.g. the spleen when only the kidneys are segmented) fails that check and the
structure falls back to plain GTM, with a warning.

The spill-in subtracted from the enlarged VOI assumes each neighbour uniform. A kidney is not (its
activity sits in the cortex, next to the border), and spills into a neighbour's enlarged VOI about
4 x its own relative GTM deficit (4-10 %) more than modelled, so the error of the neighbour's activity
is roughly 0.2-0.4 x the kidney's spill-in over the neighbour's own counts. A small tumour touching a
kidney has 1-6 x more kidney spill-in than own counts in its enlarged VOI and was over-estimated by
14-55 % (plain GTM: +1-8 %). So a structure uses the enlarged VOI only where the spill-in from
neighbours of a non-uniform kind (``NONUNIFORM_KINDS``, named by ``startnet.structure_kinds``) is at
most ``MAX_NONUNIFORM_SPILL_IN`` (0.1) of its own counts there (error below about 4 %); above, plain GTM.
Uniform neighbours (liver, spleen, the body remainder) are modelled well and do not count: in the
phantom the enlarged VOI reads its small liver and body tumours within 5 % where plain GTM reads them
15-30 % low, and the kidneys (next to liver and spleen) within 2 %. ``GtmResult.reason`` says per
structure which method was used and why.

``rc``: each structure's VOI activity divided by the recovery coefficient of its volume (camera
curve of spheres): simpler, used when structures overlap (e.g. kidney and its cortex) and as a
cross-check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import numpy as np
from scipy import ndimage, optimize

from startnet.structure_kinds import KIDNEY, structure_kind

LOG = logging.getLogger(__name__)
BACKGROUND = "__background__"
# largest relative mismatch, in the ring around a structure and summed over the time points, between the
# counts measured and those the regional model predicts, for the enlarged VOI to be used
RING_TOLERANCE = 0.10
# kinds of structure whose activity is known not to be uniform (kidney: hot cortex), so that the spill-in
# modelled from their GTM concentration is not trusted, and the largest such spill-in into a structure's
# enlarged VOI, relative to the structure's own counts there (summed over the time points), for the enlarged
# VOI to be used (see module doc)
NONUNIFORM_KINDS = (KIDNEY,)
MAX_NONUNIFORM_SPILL_IN = 0.1


@dataclass
class GtmResult:
    """Per structure: activity (MBq) at each time point and the apparent recovery (measured/true)."""

    activity_mbq: Dict[str, np.ndarray]
    concentration_bqml: Dict[str, np.ndarray]
    apparent_recovery: Dict[str, float]
    matrix: np.ndarray
    names: List[str]
    condition_number: float
    warnings: List[str] = field(default_factory=list)
    method: Dict[str, str] = field(default_factory=dict)  # per structure: "enlarged VOI" or "GTM"
    reason: Dict[str, str] = field(default_factory=dict)  # per structure: why that method


def overlapping(fractions: Mapping[str, np.ndarray], tolerance: float = 0.05,
                max_shared_share: float = 0.02) -> bool:
    """True when a structure shares more than ``max_shared_share`` of its volume with others.

    Voxels whose fractions sum above 1 + ``tolerance`` are shared. A few shared border voxels
    (two masks both claiming a voxel split half and half, e.g. after a round trip through a
    binary DICOM SEG) are not an overlap: :func:`normalised` splits them. A kidney and its
    cortex are.
    """
    total = np.zeros(next(iter(fractions.values())).shape, np.float32)
    for fraction in fractions.values():
        total += fraction
    shared = total > 1.0 + tolerance
    if not shared.any():
        return False
    return any(float(f[shared].sum()) > max_shared_share * float(f.sum()) for f in fractions.values() if f.sum() > 0)


def normalised(fractions: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Fractions scaled down where they sum above 1, so every voxel is shared out at most once."""
    total = np.zeros(next(iter(fractions.values())).shape, np.float32)
    for fraction in fractions.values():
        total += fraction
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-12), 1.0).astype(np.float32)
    return {name: np.asarray(fraction, np.float32) * scale for name, fraction in fractions.items()}


def _voi_and_ring(mask: np.ndarray, spacing_zyx_mm, reach_mm: float, ring_from_mm: float):
    """Voxels within ``reach_mm`` of the mask (VOI) and those of them beyond ``ring_from_mm`` (ring).

    The distance transform runs on the mask's bounding box grown by the reach only.
    """
    voi = np.zeros(mask.shape, bool)
    ring = np.zeros(mask.shape, bool)
    where = np.argwhere(mask)
    if where.size == 0:
        return voi, ring
    margin = [int(np.ceil(reach_mm / s)) + 1 for s in spacing_zyx_mm]
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = np.minimum(where.max(axis=0) + 1 + np.array(margin), mask.shape)
    window = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    distance = ndimage.distance_transform_edt(~mask[window], sampling=spacing_zyx_mm)
    voi[window] = distance <= reach_mm
    ring[window] = voi[window] & (distance > ring_from_mm)
    return voi, ring


def _blur(array: np.ndarray, sigma_voxels) -> np.ndarray:
    from startnet.dosimetry.psf_blur import gaussian_blur  # = ndimage.gaussian_filter, on the region's box

    return gaussian_blur(array.astype(np.float32), sigma_voxels, truncate=3.0)


def gtm_activities(images_bqml: List[np.ndarray], fractions: Mapping[str, np.ndarray], spacing_zyx_mm,
                   psf_fwhm_mm: float, body_fraction: Optional[np.ndarray] = None,
                   enlarged_voi_fwhm: float = 1.5) -> GtmResult:
    """Partial-volume corrected activity of each structure at each time point (see module doc)."""
    names = list(fractions)
    maps = [np.clip(np.asarray(fractions[n], np.float32), 0.0, 1.0) for n in names]
    warnings: List[str] = []
    if body_fraction is not None:
        background = np.clip(np.asarray(body_fraction, np.float32) - np.sum(maps, axis=0), 0.0, 1.0)
        if background.sum() > 0.01 * sum(float(m.sum()) for m in maps):
            names.append(BACKGROUND)
            maps.append(background)
    sigma = [psf_fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / s for s in spacing_zyx_mm]
    sizes = np.array([float(m.sum()) for m in maps])
    blurred = [_blur(m, sigma) for m in maps]
    n = len(maps)
    matrix = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            matrix[i, j] = float(np.sum(maps[i] * blurred[j], dtype=np.float64)) / sizes[i]
    condition = float(np.linalg.cond(matrix))
    if condition > 1e3:
        warnings.append(f"partial-volume correction: transfer matrix poorly conditioned ({condition:.0f}); "
                        "structures too small or too close for the PSF")
    voxel_ml = float(np.prod(spacing_zyx_mm)) / 1000.0
    activity = {name: np.zeros(len(images_bqml)) for name in names}
    concentration = {name: np.zeros(len(images_bqml)) for name in names}
    vois = []
    if enlarged_voi_fwhm > 0:
        reach_mm = enlarged_voi_fwhm * psf_fwhm_mm
        # outer ring, more than one FWHM from the outline: a structure's own spill-out hardly reaches it
        # (whatever its inner distribution), a neighbour's spill-in does
        vois, rings = zip(*(_voi_and_ring(m > 0, spacing_zyx_mm, reach_mm, psf_fwhm_mm) for m in maps))
        # share of each region's blurred indicator that lands in each VOI
        captured = np.array([[float(blurred[j][vois[i]].sum(dtype=np.float64)) for j in range(n)] for i in range(n)])
        ring_captured = np.array([[float(blurred[j][rings[i]].sum(dtype=np.float64)) for j in range(n)]
                                  for i in range(n)])
    use_voi = {name: bool(vois) and name != BACKGROUND for name in names}
    reason = {name: "enlarged VOI not requested (enlarged_voi_fwhm = 0)" for name in names}
    solutions = []
    ring_observed, ring_predicted = np.zeros(n), np.zeros(n)
    voi_counts, voi_spill_in, voi_spill_nonuniform = np.zeros(n), np.zeros(n), np.zeros(n)
    nonuniform_neighbour = np.array([[j != i and structure_kind(names[j]) in NONUNIFORM_KINDS for j in range(n)]
                                     for i in range(n)])
    for image in images_bqml:
        measured = np.array([float(np.sum(m * image, dtype=np.float64)) / s for m, s in zip(maps, sizes)])
        solutions.append(optimize.nnls(matrix, measured)[0])
        if vois:
            ring_observed += [float(image[ring].sum(dtype=np.float64)) for ring in rings]
            ring_predicted += ring_captured @ solutions[-1]
            voi_counts += [float(image[voi].sum(dtype=np.float64)) for voi in vois]
            voi_spill_in += (captured - np.diag(np.diag(captured))) @ solutions[-1]
            voi_spill_nonuniform += (captured * nonuniform_neighbour) @ solutions[-1]
    for k, name in enumerate(names):
        if use_voi[name]:
            use_voi[name], reason[name] = _enlarged_voi_check(
                name, ring_observed[k], ring_predicted[k], voi_counts[k] - voi_spill_in[k], voi_spill_nonuniform[k],
                warnings)
    for t, image in enumerate(images_bqml):
        solution = solutions[t]
        for k, name in enumerate(names):
            concentration[name][t] = solution[k]
            activity[name][t] = solution[k] * sizes[k] * voxel_ml * 1e-6
        if vois:
            for k, name in enumerate(names):
                if not use_voi[name]:
                    continue
                counts = float(image[vois[k]].sum(dtype=np.float64))
                spill_in = sum(solution[j] * captured[k, j] for j in range(n) if j != k)
                own = max(counts - spill_in, 0.0) / (captured[k, k] / sizes[k])
                activity[name][t] = own * voxel_ml * 1e-6
    apparent = {name: float(matrix[k, k]) for k, name in enumerate(names)}
    structures = [name for name in names if name != BACKGROUND]
    methods = {k: "enlarged VOI minus spill-in" if use_voi[k] else "GTM" for k in structures}
    return GtmResult({k: activity[k] for k in structures}, {k: concentration[k] for k in structures},
                     {k: apparent[k] for k in structures}, matrix, names, condition, warnings, methods,
                     {k: reason[k] for k in structures})


def _enlarged_voi_check(name: str, ring_observed: float, ring_predicted: float, own_counts: float,
                        nonuniform_spill_in: float, warnings: List[str]):
    """(use the enlarged VOI?, why) for one structure, from counts summed over the time points."""
    LOG.debug("%s: ring counts observed %.4g, predicted %.4g; own counts in the VOI %.4g, spill-in from "
              "non-uniform neighbours %.4g", name, ring_observed, ring_predicted, own_counts, nonuniform_spill_in)
    # The enlarged VOI is trusted only where the regional model explains the counts around the structure:
    # an unsegmented hot neighbour would otherwise count as its own.
    if ring_observed > 0 and abs(ring_observed - ring_predicted) > RING_TOLERANCE * ring_observed:
        mismatch_pct = 100 * (ring_observed - ring_predicted) / ring_observed
        warnings.append(f"{name}: the counts around it are not explained by the segmented structures "
                        f"({mismatch_pct:+.0f} %): an unsegmented source nearby? Partial-volume correction by the "
                        "transfer matrix alone")
        return False, (f"GTM: counts around the structure {mismatch_pct:+.0f} % from the regional model "
                       f"(tolerance {100 * RING_TOLERANCE:.0f} %)")
    ratio = nonuniform_spill_in / own_counts if own_counts > 0 else float("inf")
    if ratio > MAX_NONUNIFORM_SPILL_IN:
        return False, (f"GTM: spill-in from a non-uniform neighbour ({', '.join(NONUNIFORM_KINDS)}) into the "
                       f"enlarged VOI is {ratio:.2f} x the structure's own counts (limit {MAX_NONUNIFORM_SPILL_IN:g})")
    return True, (f"enlarged VOI: surrounding counts explained by the regional model; spill-in from non-uniform "
                  f"neighbours {ratio:.2f} x own counts (limit {MAX_NONUNIFORM_SPILL_IN:g})")
