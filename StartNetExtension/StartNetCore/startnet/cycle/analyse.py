"""Kinetics, dose, BED and uncertainty of every structure of one registered cycle.

Steps (each a function of ``startnet.kinetics`` / ``startnet.dosimetry``):

1. CT on the reference SPECT grid (mean over each SPECT voxel) -> mass density (g/mL).
2. Per structure: activity (MBq) at each time point, divided by the recovery coefficient of its
   volume when recovery correction is on; TAC fit (model chosen by AICc, or single time point).
3. Per voxel: TIA map (MBq.h per voxel) from the per-voxel fits inside the body. Inside each
   structure the voxel TIA is scaled so that it sums to the structure's (recovery-corrected) fitted
   TIA: the voxel map keeps the distribution, the structure fit carries the amount. The factor
   is recorded per structure (``voxel_tia_scale``).
4. Dose map with the chosen method (led | vsv | vsv-density), structure statistics, DVH.
5. BED with the structure's fitted time course (general G factor), EQD2, GUM uncertainty.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from startnet.cycle.pvc import PVC_METHODS
from startnet.errors import InputError
from startnet.physics.lu177 import LU177

# BED parameters (alpha/beta Gy, repair half-time h) by structure-name prefix. Kidneys from
# REFERENCE.md section 3; tumours and other organs are common assumptions, recorded in results.
BED_PARAMETERS: Tuple[Tuple[str, float, float], ...] = (
    ("kidney", 2.6, 2.8),
    ("tumour", 10.0, 1.5),
    ("tumor", 10.0, 1.5),
    ("", 3.0, 1.5),
)
V_THRESHOLDS_GY = (5.0, 10.0, 20.0, 23.0, 30.0)
# Standard uncertainty of a CT-based structure boundary's position (assumed: about one CT voxel).
BOUNDARY_SD_MM = 1.0


def surface_area_mm2(mask: np.ndarray, spacing_xyz_mm) -> float:
    """Surface area (mm^2) of a (z, y, x) mask: its voxel faces times 2/3.

    A voxelised surface's face area over-estimates a smooth surface by 3/2 on average over
    orientations (Cauchy-Crofton), hence the factor.
    """
    sx, sy, sz = (float(v) for v in spacing_xyz_mm)
    padded = np.pad(np.asarray(mask, dtype=np.int8), 1)
    faces_z = np.count_nonzero(np.diff(padded, axis=0))
    faces_y = np.count_nonzero(np.diff(padded, axis=1))
    faces_x = np.count_nonzero(np.diff(padded, axis=2))
    return (faces_z * sx * sy + faces_y * sx * sz + faces_x * sy * sz) * 2.0 / 3.0


def bed_parameters_for(name: str) -> Tuple[float, float]:
    for prefix, alpha_beta, t_rep in BED_PARAMETERS:
        if name.lower().startswith(prefix):
            return alpha_beta, t_rep
    return BED_PARAMETERS[-1][1:]


def shipped_recovery_curve(camera: str = "default"):
    """The camera's recovery curve shipped in the package (RC vs volume, with its relative SD)."""
    from startnet.segmentation import load_recovery_curves

    curves = load_recovery_curves()
    if camera not in curves:
        raise InputError(f"no recovery curve for camera '{camera}'; available: {sorted(curves)}")
    return curves[camera]


@dataclass
class StructureAnalysis:
    structure_results: OrderedDict[str, Dict[str, Any]]
    fits: Dict[str, Any]
    activity_mbq: Dict[str, np.ndarray]
    dose_gy: sitk.Image
    electron_gy: sitk.Image
    photon_gy: sitk.Image
    tia_mbq_h: sitk.Image
    bed_gy: sitk.Image
    ct_hu_on_grid: Optional[sitk.Image]
    density_g_per_ml: sitk.Image
    dvhs: Dict[str, Tuple[np.ndarray, np.ndarray]]
    warnings: List[str] = field(default_factory=list)
    provenance: Dict[str, Any] = field(default_factory=dict)
    structures: Any = None  # the structures analysed (those without activity left out)


def _image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.CopyInformation(reference)
    return image


def _finite(value: float, digits: int = 4) -> Optional[float]:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def activity_stack_mbq(images: List[sitk.Image]) -> np.ndarray:
    """(T, z, y, x) float32 MBq per voxel from Bq/mL images on one grid."""
    voxel_ml = float(np.prod(images[0].GetSpacing())) / 1000.0
    return np.stack([sitk.GetArrayViewFromImage(im).astype(np.float32) * np.float32(voxel_ml * 1e-6)
                     for im in images])


def structure_activities(registered, structures, stack: np.ndarray, ct_grid, pvc: str, psf_fwhm_mm: float,
                         warnings: List[str]):
    """(activity MBq per structure and time point, recovery per structure, description, method per structure)."""
    from startnet.cycle.quantify import gtm_activities, normalised, overlapping

    grid = registered.reference_grid
    spacing_zyx = tuple(reversed(grid.GetSpacing()))
    fractions = structures.fraction_maps()
    if pvc == "gtm" and overlapping(fractions):
        warnings.append("structures overlap (e.g. an organ and its sub-region): partial-volume correction by "
                        "recovery coefficients instead of the transfer matrix")
        pvc = "rc"
    if pvc == "gtm":
        fractions = normalised(fractions)
        body = None if ct_grid is None else _body_fraction(registered.ct_hu, grid)
        images = [sitk.GetArrayViewFromImage(im).astype(np.float32) for im in registered.activity_bqml]
        gtm = gtm_activities(images, fractions, spacing_zyx, psf_fwhm_mm, body)
        warnings += gtm.warnings
        return (gtm.activity_mbq, gtm.apparent_recovery,
                f"geometric transfer matrix (PSF {psf_fwhm_mm:g} mm FWHM); activity in VOIs enlarged by 1.5 FWHM "
                "minus spill-in where the model explains the surrounding counts", gtm.method)
    recovery = shipped_recovery_curve() if pvc == "rc" else None
    voxel_ml = float(np.prod(grid.GetSpacing())) / 1000.0
    activities, rc_values = {}, {}
    for name, mask in structures.masks.items():
        rc = float(recovery.rc(float(mask.sum()) * voxel_ml)) if recovery is not None else 1.0
        rc_values[name] = rc
        activities[name] = stack[:, mask].sum(axis=1, dtype=np.float64) / rc
    described = ("recovery coefficients: " + recovery.source) if recovery else "none"
    return activities, rc_values, described, {name: pvc for name in activities}


def _without_empty(structures, activities, warnings: List[str]):
    """Structures with measurable activity; empty ones (e.g. a voided bladder) are left out with a warning.

    A kidney without activity is an error: it means the segmentation is not on the patient's kidneys.
    """
    empty = [name for name in structures.masks if not np.any(np.asarray(activities[name]) > 0)]
    for name in empty:
        if name.startswith("kidney"):
            raise InputError(f"structure '{name}' has no activity at any time point: is the segmentation on the "
                             "reference time point's anatomy?")
        warnings.append(f"structure '{name}' has no measurable activity at any time point and is left out")
    if len(empty) == len(structures.masks):
        raise InputError("no structure has measurable activity: is the segmentation on the reference time point's "
                         "anatomy?")
    if not empty:
        return structures
    keep = [name for name in structures.masks if name not in empty]
    return replace(structures, masks=OrderedDict((n, structures.masks[n]) for n in keep),
                   fractions={n: f for n, f in structures.fractions.items() if n in keep},
                   ct_masses_g={n: m for n, m in structures.ct_masses_g.items() if n in keep})


def _body_fraction(ct_hu: sitk.Image, grid: sitk.Image) -> np.ndarray:
    from startnet.segmentation import resample_mask

    _, fraction = resample_mask(ct_hu > -500, grid, fractional=True)
    return fraction


def analyse_structures(registered, structures, *, method: str, pvc: str = "gtm", psf_fwhm_mm: float = 11.0,
                       progress=None) -> StructureAnalysis:
    from startnet.dosimetry import density_on_grid, get_kernel, structure_dose_stats
    from startnet.dosimetry.bed import bed_map, g_map_from_rates, structure_bed
    from startnet.dosimetry.uncertainty import structure_uncertainty
    from startnet.kinetics import fit_tac, fit_voxels

    grid = registered.reference_grid
    spacing = grid.GetSpacing()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    times = np.asarray(registered.times_h, dtype=float)
    stack = activity_stack_mbq(registered.activity_bqml)
    warnings: List[str] = []

    if registered.ct_hu is None:
        ct_grid = None
        warnings.append("no CT: unit density (water) assumed for masses and dose")
        density = np.ones(stack.shape[1:], np.float32)
    else:
        ct_grid = sitk.Resample(registered.ct_hu, grid, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
        density = density_on_grid(registered.ct_hu, grid)

    if pvc not in PVC_METHODS:
        raise InputError(f"partial-volume correction {pvc!r}: expected one of {', '.join(PVC_METHODS)}")
    activities, rc_values, pvc_used, pvc_methods = structure_activities(
        registered, structures, stack, ct_grid, pvc, psf_fwhm_mm, warnings)
    recovery = shipped_recovery_curve() if pvc != "none" else None
    structures = _without_empty(structures, activities, warnings)
    if progress is not None:
        progress.stage("kinetics", "fitting time-activity curves per structure and per voxel")
    fits: Dict[str, Any] = {}
    for name in structures.masks:
        fits[name] = fit_tac(times, activities[name], structure=name)
        warnings += [f"{name}: {w}" for w in fits[name].warnings]
    if progress is not None:
        progress.update(0.3, "per-voxel fits")

    body = _body_mask(ct_grid, stack)
    labels = np.zeros(stack.shape[1:], np.int32)
    label_fits = {}
    for index, name in enumerate(structures.masks, start=1):
        labels[structures.masks[name]] = index
        label_fits[index] = fits[name]
    if len(times) >= 2:
        voxel = fit_voxels(times, stack, body, structure_fits=label_fits, labels=labels)
        tia = voxel.tia_mbq_h.astype(np.float32)
        k_map = voxel.k_per_h
        warnings += voxel.warnings
        voxel_counts = {str(code): int(n) for code, n in voxel.counts.items()}
    else:
        tia, k_map = _single_timepoint_voxel_tia(stack[0], body, labels, label_fits, times[0])
        voxel_counts = {"single_time_point": int(body.sum())}
        warnings.append("one time point only: per-voxel TIA scaled from each structure's single-time-point estimate")

    scales = {}
    for name, mask in structures.masks.items():
        voxel_sum = float(tia[mask].sum(dtype=np.float64))
        scales[name] = fits[name].tia_mbq_h / voxel_sum if voxel_sum > 0 else float("nan")
        if voxel_sum > 0:
            tia[mask] *= np.float32(scales[name])
    if progress is not None:
        progress.update(1.0, "kinetics done")
        progress.stage("dose", f"absorbed dose ({method})")

    kernel = get_kernel(tuple(float(s) for s in spacing))
    dose = compute_dose(method, tia, voxel_ml, density, kernel)
    total = np.asarray(dose.total_gy, dtype=np.float32)
    kidney_ab, kidney_trep = bed_parameters_for("kidney")
    bed = bed_map(total, g_map_from_rates(k_map, kidney_trep), kidney_ab)

    results: OrderedDict[str, Dict[str, Any]] = OrderedDict()
    dvhs = {}
    fractions = structures.fraction_maps()
    voxel_mass_g = density * np.float32(voxel_ml)
    for name, mask in structures.masks.items():
        fit = fits[name]
        share = fractions[name]
        mass_g = structures.ct_masses_g.get(name) or float(np.sum(share * voxel_mass_g, dtype=np.float64))
        volume_ml = float(np.sum(share, dtype=np.float64)) * voxel_ml
        volume_sd_ml = surface_area_mm2(mask, spacing) * BOUNDARY_SD_MM / 1000.0
        # organ-level mean: electrons deposit locally (177Lu range <= 1.8 mm), photons from the map
        electron_gy = fit.tia_mbq_h * LU177.electron_energy_j_per_mbq_h / (mass_g * 1.0e-3)
        photon_gy = (float(np.sum(share * voxel_mass_g * dose.photon_gy, dtype=np.float64))
                     / float(np.sum(share * voxel_mass_g, dtype=np.float64)))
        mean_gy = electron_gy + photon_gy
        stats = structure_dose_stats(total, mask, voxel_mass_g=voxel_mass_g, v_thresholds_gy=V_THRESHOLDS_GY)
        scale = mean_gy / stats.mean_gy if stats.mean_gy > 0 else 1.0
        alpha_beta, t_rep = bed_parameters_for(name)
        bed_result = structure_bed(name, mean_gy, fit, alpha_beta, t_rep)
        budget = structure_uncertainty(name, tia_mbq_h=fit.tia_mbq_h, tia_fit_sd_mbq_h=fit.tia_sd_mbq_h,
                                       volume_ml=volume_ml, volume_sd_ml=volume_sd_ml, dose_gy=mean_gy,
                                       recovery=recovery)
        dvhs[name] = (np.asarray(stats.dvh_dose_gy) * scale, np.asarray(stats.dvh_volume_fraction))
        results[name] = {
            "volume_ml": _finite(volume_ml, 3), "mass_g": _finite(mass_g, 3),
            "activity_mbq": [_finite(a, 4) for a in activities[name]],
            "recovery_coefficient": _finite(rc_values[name], 4), "pvc_method": pvc_methods[name],
            "tia_mbq_h": _finite(fit.tia_mbq_h, 3), "tia_sd_mbq_h": _finite(budget.tia.combined_sd, 3),
            "mean_gy": _finite(mean_gy), "electron_mean_gy": _finite(electron_gy), "photon_mean_gy": _finite(photon_gy),
            "voxel_map_mean_gy": _finite(stats.mean_gy),
            "min_gy": _finite(stats.min_gy * scale), "max_gy": _finite(stats.max_gy * scale),
            "median_gy": _finite(stats.median_gy * scale), "d2_gy": _finite(stats.d2_gy * scale),
            "d50_gy": _finite(stats.d50_gy * scale), "d98_gy": _finite(stats.d98_gy * scale),
            "v_gy": {f"{k:g}": _finite(v, 4) for k, v in stats.v_gy.items()},
            "bed_gy": _finite(bed_result.bed_gy), "eqd2_gy": _finite(bed_result.eqd2_gy),
            "bed_alpha_beta_gy": alpha_beta, "bed_t_rep_h": t_rep, "bed_g_factor": _finite(bed_result.g_factor, 6),
            "uncertainty_pct": _finite(100.0 * budget.dose.combined_rel_sd, 2),
            "uncertainty_gy": _finite(budget.dose.combined_sd),
            "uncertainty_budget": [{"component": c.name, "relative_pct": _finite(100 * c.contribution_rel, 3)}
                                   for c in budget.dose.components],
            "fit_model": fit.model, "fit_selection": fit.selection_reason,
            "effective_half_life_h": _finite(fit.effective_half_life_h, 3),
            "voxel_tia_scale": _finite(scales[name], 4),
        }
    provenance = {
        "kinetics": {"structure_models": {n: f.model for n, f in fits.items()}, "voxel_model_counts": voxel_counts,
                     "voxel_tia": "per-voxel fits, scaled inside each structure to its fitted TIA",
                     "partial_volume_correction": pvc_used},
        "dose": {"method": method, "kernel": getattr(kernel, "provenance", None), "nuclide": LU177.name,
                 "structure_mean": "electrons: TIA x mean electron energy / structure mass (CT density at CT "
                                   "resolution when the segmentation file is given, else on the SPECT grid with "
                                   "voxel fractions); photons: mass-weighted mean of the photon dose map",
                 "voxel_statistics": "min/max/median/D2/D50/D98/DVH from the dose map over the structure, scaled "
                                     "by mean_gy / voxel_map_mean_gy",
                 "density": "CT HU -> density curve" if ct_grid is not None else "water"},
        "bed": {"by_prefix": [list(p) for p in BED_PARAMETERS], "voxel_map": "kidney parameters, voxel clearance rate"},
        "uncertainty": f"GUM: calibration factor, recovery coefficient, volume (boundary SD {BOUNDARY_SD_MM:g} mm "
                       "over the structure surface), fit covariance",
    }
    electron = _image_like(np.asarray(dose.electron_gy), grid)
    photon = _image_like(np.asarray(dose.photon_gy), grid)
    return StructureAnalysis(results, fits, activities, _image_like(total, grid), electron, photon,
                             _image_like(tia, grid), _image_like(bed, grid), ct_grid, _image_like(density, grid),
                             dvhs, warnings, provenance, structures)


def compute_dose(method: str, tia: np.ndarray, voxel_ml: float, density: np.ndarray, kernel):
    """Dose maps with the chosen engine; photons always by kernel convolution (dose to water)."""
    from startnet.dosimetry.engines import dose_maps

    return dose_maps(method, tia, voxel_ml, density, kernel)


def _body_mask(ct_grid: Optional[sitk.Image], stack: np.ndarray) -> np.ndarray:
    if ct_grid is not None:
        body = sitk.GetArrayViewFromImage(ct_grid) > -500
        if body.any():
            return np.ascontiguousarray(body)
    return np.ascontiguousarray(stack.max(axis=0) > 0)


def _single_timepoint_voxel_tia(activity: np.ndarray, body, labels, label_fits, time_h: float):
    """TIA map from one time point: each structure's TIA/A ratio, Haenscheid elsewhere."""
    from startnet.kinetics import haenscheid_tia

    tia = np.zeros(activity.shape, np.float32)
    k_map = np.zeros(activity.shape, np.float32)
    ratio_outside = haenscheid_tia(1.0, float(time_h))
    tia[body] = activity[body] * np.float32(ratio_outside)
    k_map[body] = np.float32(math.log(2.0) / float(time_h))  # Haenscheid: T_eff taken equal to t
    for label, fit in label_fits.items():
        region = labels == label
        measured = float(fit.activity_mbq[0])
        if measured > 0:
            tia[region] = activity[region] * np.float32(fit.tia_mbq_h / measured)
            k_map[region] = np.float32(math.log(2.0) / fit.effective_half_life_h)
    return tia, k_map


def kidneys_summary(structure_results) -> Dict[str, Any]:
    """Mass-weighted mean kidney dose, BED and uncertainty over the kidneys present."""
    kidneys = [(name, r) for name, r in structure_results.items() if name in ("kidney_left", "kidney_right")]
    if not kidneys:
        return {"kidneys_mean_gy": None, "kidneys_bed_gy": None, "kidneys_uncertainty_pct": None,
                "kidneys_included": []}
    masses = np.array([r["mass_g"] for _, r in kidneys], dtype=float)
    weights = masses / masses.sum()
    mean = float(np.dot(weights, [r["mean_gy"] for _, r in kidneys]))
    bed = float(np.dot(weights, [r["bed_gy"] for _, r in kidneys]))
    # fully correlated calibration dominates: combine absolute uncertainties linearly (conservative)
    unc_gy = float(np.dot(weights, [r["uncertainty_gy"] for _, r in kidneys]))
    return {"kidneys_mean_gy": round(mean, 4), "kidneys_bed_gy": round(bed, 4),
            "kidneys_uncertainty_pct": round(100.0 * unc_gy / mean, 2) if mean > 0 else None,
            "kidneys_uncertainty_gy": round(unc_gy, 4), "kidneys_included": [n for n, _ in kidneys]}
