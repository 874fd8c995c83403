"""Kinetics, dose, BED and uncertainty of every structure of one registered cycle.

Steps (each a function of ``startnet.kinetics`` / ``startnet.dosimetry``):

1. CT on the reference SPECT grid (mean over each SPECT voxel) -> mass density (g/mL).
2. Per structure: activity (MBq) at each time point, divided by the recovery coefficient of its
   volume when recovery correction is on; TAC fit (model chosen by AICc, or single time point).
3. Per voxel: TIA map (MBq.h per voxel) from the per-voxel fits inside the body. Inside each
   structure the voxel TIA is scaled so that its voxels, weighted by the structure's shares of
   them (the weights of its mass), sum to the structure's (partial-volume corrected) fitted TIA:
   the voxel map keeps the distribution, the structure fit carries the amount
   (``startnet.cycle.structure_maps``). The factor is recorded per structure (``voxel_tia_scale``).
4. Dose map with the chosen method (led | vsv | vsv-density), structure statistics, DVH.
5. BED with the structure's fitted time course (general G factor), EQD2, GUM uncertainty; the voxel
   BED map with each structure's own alpha/beta and T_rep.
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
from startnet.kinetics.point_sd import PointSdModel
from startnet.physics.lu177 import LU177
from startnet.structure_kinds import KIDNEY, TUMOUR, structure_kind

# BED parameters (alpha/beta Gy, repair half-time h) by structure kind (``startnet.structure_kinds``:
# "lesion_1", "Tumor 3", "met_2" are tumours). Kidneys from REFERENCE.md section 3; tumours and other
# organs are common assumptions, recorded in results. The last row ("") is the default for every
# other structure and for the voxels outside all structures in the voxel BED map.
BED_PARAMETERS: Tuple[Tuple[str, float, float], ...] = (
    (KIDNEY, 2.6, 2.8),
    (TUMOUR, 10.0, 1.5),
    ("", 3.0, 1.5),
)
V_THRESHOLDS_GY = (5.0, 10.0, 20.0, 23.0, 30.0)
# Allowed difference, beyond the kernel's spill, between a structure's reported mean and the dose map's
# mean over it before a warning (mass on the SPECT grid vs at CT resolution, e.g. lungs, bone).
MAP_MEAN_TOLERANCE = 0.01
# per-time-point, uncorrelated activity SDs fed to the TAC fits (startnet.kinetics.point_sd)
POINT_SD_MODEL = PointSdModel()
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
    """(alpha/beta Gy, T_rep h) of a structure, by the kind its name denotes."""
    kind = structure_kind(name) or ""
    for row_kind, alpha_beta, t_rep in BED_PARAMETERS:
        if row_kind == kind:
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
                         warnings: List[str], reasons: Optional[Dict[str, str]] = None, recovery_curve=None,
                         body_fraction: Optional[np.ndarray] = None):
    """(activity MBq per structure and time point, recovery per structure, description, method per structure).

    ``reasons``, when given, receives per structure why its method was used (for the report);
    ``recovery_curve``: the camera's measured curve (``startnet calibrate``), else the shipped default;
    ``body_fraction``: :func:`body_fraction` of the reference CT on the grid when already computed.
    """
    reasons = {} if reasons is None else reasons
    from startnet.cycle.quantify import gtm_activities, normalised, overlapping

    grid = registered.reference_grid
    spacing_zyx = tuple(reversed(grid.GetSpacing()))
    fractions = structures.fraction_maps()
    if pvc == "gtm" and overlapping(fractions):
        warnings.append("structures overlap (e.g. an organ and its sub-region): partial-volume correction by "
                        "recovery coefficients instead of the transfer matrix")
        pvc = "rc"
        reasons.update({name: "fallback to recovery coefficients: structures overlap (the transfer matrix needs "
                              "disjoint regions)" for name in structures.masks})
    if pvc == "gtm":
        fractions = normalised(fractions)
        body = None if ct_grid is None else (body_fraction if body_fraction is not None
                                             else body_fraction_on_grid(registered.ct_hu, grid))
        images = [sitk.GetArrayViewFromImage(im).astype(np.float32) for im in registered.activity_bqml]
        gtm = gtm_activities(images, fractions, spacing_zyx, psf_fwhm_mm, body)
        warnings += gtm.warnings
        reasons.update(gtm.reason)
        return (gtm.activity_mbq, gtm.apparent_recovery,
                f"geometric transfer matrix (PSF {psf_fwhm_mm:g} mm FWHM); activity in VOIs enlarged by 1.5 FWHM "
                "minus spill-in where the model explains the surrounding counts", gtm.method)
    recovery = (recovery_curve or shipped_recovery_curve()) if pvc == "rc" else None
    voxel_ml = float(np.prod(grid.GetSpacing())) / 1000.0
    activities, rc_values = {}, {}
    for name, mask in structures.masks.items():
        rc = float(recovery.rc(float(mask.sum()) * voxel_ml)) if recovery is not None else 1.0
        rc_values[name] = rc
        activities[name] = stack[:, mask].sum(axis=1, dtype=np.float64) / rc
    for name in activities:
        reasons.setdefault(name, "recovery coefficients requested" if recovery else "no partial-volume correction "
                                 "requested")
    described = ("recovery coefficients: " + recovery.source) if recovery else "none"
    return activities, rc_values, described, {name: pvc for name in activities}


def timepoint_counts_per_mbq(registered) -> List[float]:
    """Counts per MBq of each time point's acquisition (``startnet.kinetics.point_sd.counts_per_mbq``)."""
    from startnet.kinetics.point_sd import counts_per_mbq

    timepoints = list(getattr(getattr(registered, "cycle", None), "timepoints", None) or [])
    n = len(registered.times_h)
    if len(timepoints) != n:
        return [counts_per_mbq(None)] * n
    return [counts_per_mbq(getattr(tp, "conversion", None)) for tp in timepoints]


def counted_volume_elasticity(stack: np.ndarray, mask: np.ndarray) -> float:
    """d ln(counts in the VOI) / d ln V: mean count density in the one-voxel shell outside over that inside.

    Summed over the time points; used by the VOI methods' volume term (``startnet.dosimetry.pvc_terms``).
    """
    from scipy import ndimage

    inside = np.asarray(mask, bool)
    shell = ndimage.binary_dilation(inside) & ~inside
    if not inside.any() or not shell.any():
        return 1.0
    total = stack.sum(axis=0, dtype=np.float64)
    mean_inside = float(total[inside].mean())
    return float(total[shell].mean()) / mean_inside if mean_inside > 0 else 1.0


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


def _without_failed(structures, failed: Dict[str, str]):
    """The structures whose time-activity fit succeeded (failures are reported in warnings/provenance)."""
    if not failed:
        return structures
    keep = [name for name in structures.masks if name not in failed]
    return replace(structures, masks=OrderedDict((n, structures.masks[n]) for n in keep),
                   fractions={n: f for n, f in structures.fractions.items() if n in keep},
                   ct_masses_g={n: m for n, m in structures.ct_masses_g.items() if n in keep})


def body_fraction_on_grid(ct_hu: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Share of each ``grid`` voxel inside the body (CT above -500 HU): the GTM background and PSF check region."""
    from startnet.segmentation import resample_mask

    _, fraction = resample_mask(ct_hu > -500, grid, fractional=True)
    return fraction


def psf_elasticities(registered, structures, stack, ct_grid, pvc: str, psf_fwhm_mm: float, activities,
                     recovery_curve=None, step: float = 0.1, body_fraction: Optional[np.ndarray] = None
                     ) -> Dict[str, float]:
    """d ln A / d ln FWHM per structure (activity summed over time points): the PSF's GUM sensitivity."""
    wider, _, _, _ = structure_activities(registered, structures, stack, ct_grid, pvc, psf_fwhm_mm * (1.0 + step), [],
                                          recovery_curve=recovery_curve, body_fraction=body_fraction)
    out = {}
    for name, values in activities.items():
        base, moved = float(np.sum(values)), float(np.sum(wider.get(name, values)))
        out[name] = math.log(moved / base) / math.log(1.0 + step) if base > 0 and moved > 0 else 0.0
    return out


def analyse_structures(registered, structures, *, method: str, pvc: str = "gtm", psf_fwhm_mm: float = 11.0,
                       progress=None, recovery_curve=None, cf_rel_sd: Optional[float] = None,
                       psf_fwhm_rel_sd: Optional[float] = None,
                       body_fraction: Optional[np.ndarray] = None) -> StructureAnalysis:
    """Kinetics, dose, BED and uncertainty per structure (module doc).

    ``recovery_curve``, ``cf_rel_sd``, ``psf_fwhm_rel_sd``: the camera's calibration (``startnet
    calibrate``); None: the shipped curve, 5 % for the CF and ``DEFAULT_PSF_REL_SD`` for the PSF.
    ``body_fraction``: :func:`body_fraction_on_grid` of the reference CT, when the caller has it.
    """
    from startnet.cycle.structure_maps import bed_map_by_structure, kernel_electron_spill, scale_voxel_tia
    from startnet.dosimetry import density_on_grid, get_kernel, structure_dose_stats
    from startnet.dosimetry.bed import BedResult, structure_bed
    from startnet.dosimetry.pvc_terms import DEFAULT_PSF_REL_SD, pvc_terms
    from startnet.dosimetry.uncertainty import DEFAULT_CF_REL_SD, structure_uncertainty
    from startnet.kinetics import fit_tac, fit_voxels
    from startnet.kinetics.fit import AICC_CONVENTION
    from startnet.kinetics.model_selection import model_selection_rel_sd
    from startnet.kinetics.point_sd import activity_sd_mbq

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
    pvc_reasons: Dict[str, str] = {}
    activities, rc_values, pvc_used, pvc_methods = structure_activities(
        registered, structures, stack, ct_grid, pvc, psf_fwhm_mm, warnings, pvc_reasons, recovery_curve,
        body_fraction=body_fraction)
    recovery = (recovery_curve or shipped_recovery_curve()) if pvc != "none" else None
    psf_rel_sd = DEFAULT_PSF_REL_SD if psf_fwhm_rel_sd is None else float(psf_fwhm_rel_sd)
    psf_elasticity = (psf_elasticities(registered, structures, stack, ct_grid, pvc, psf_fwhm_mm, activities,
                                       recovery_curve, body_fraction=body_fraction)
                      if pvc != "none" and psf_rel_sd > 0 else {})
    structures = _without_empty(structures, activities, warnings)
    if progress is not None:
        progress.stage("kinetics", "fitting time-activity curves per structure and per voxel")
    fits: Dict[str, Any] = {}
    failed: Dict[str, str] = {}
    counts_per_mbq = timepoint_counts_per_mbq(registered)
    activity_sd: Dict[str, np.ndarray] = {}
    for name in structures.masks:
        try:
            activity_sd[name] = activity_sd_mbq(activities[name], counts_per_mbq, POINT_SD_MODEL, name)
            fits[name] = fit_tac(times, activities[name], sigma_mbq=activity_sd[name], structure=name)
        except Exception as exc:  # one structure's failed fit must not abort the others
            if name.startswith("kidney"):
                raise
            failed[name] = f"{type(exc).__name__}: {exc}"
            warnings.append(f"structure '{name}': time-activity fit failed ({failed[name]}); left out")
            continue
        warnings += [f"{name}: {w}" for w in fits[name].warnings]
    structures = _without_failed(structures, failed)
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

    scales, tia_scaling, scaling_warnings = scale_voxel_tia(
        tia, structures.masks, structures.fraction_maps(), {name: fits[name].tia_mbq_h for name in structures.masks})
    warnings += scaling_warnings
    if progress is not None:
        progress.update(1.0, "kinetics done")
        progress.stage("dose", f"absorbed dose ({method})")

    kernel = get_kernel(tuple(float(s) for s in spacing))
    dose = compute_dose(method, tia, voxel_ml, density, kernel)
    total = np.asarray(dose.total_gy, dtype=np.float32)
    bed = bed_map_by_structure(total, k_map, structures.masks, bed_parameters_for, BED_PARAMETERS[-1][1:])

    results: OrderedDict[str, Dict[str, Any]] = OrderedDict()
    dvhs = {}
    fractions = structures.fraction_maps()
    voxel_mass_g = density * np.float32(voxel_ml)
    spill = kernel_electron_spill(kernel) if method != "led" else 0.0
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
        # the map over the structure, each voxel weighted by the structure's share of its mass (as mass_g)
        stats = structure_dose_stats(total, share > 0, voxel_mass_g=share * voxel_mass_g,
                                     v_thresholds_gy=V_THRESHOLDS_GY)
        scale = mean_gy / stats.mean_gy if stats.mean_gy > 0 else 1.0
        if abs(scale - 1.0) > spill + MAP_MEAN_TOLERANCE:
            warnings.append(f"{name}: the dose map's mean over the structure ({stats.mean_gy:.3g} Gy) differs from "
                            f"its reported mean ({mean_gy:.3g} Gy) by more than the kernel's spill "
                            f"({100 * spill:.1f} %); mass at CT resolution {mass_g:.4g} g, on the SPECT grid "
                            f"{float(np.sum(share * voxel_mass_g, dtype=np.float64)):.4g} g")
        alpha_beta, t_rep = bed_parameters_for(name)
        try:
            bed_result = structure_bed(name, mean_gy, fit, alpha_beta, t_rep)
        except Exception as exc:  # a BED failure leaves the structure's dose in place
            if name.startswith("kidney"):
                raise
            warnings.append(f"structure '{name}': BED not computed ({type(exc).__name__}: {exc})")
            bed_result = BedResult(name, mean_gy, math.nan, math.nan, math.nan, alpha_beta, t_rep, "failed")
        terms = pvc_terms(name, pvc_methods[name], pvc_reasons.get(name, ""), volume_ml=volume_ml,
                          psf_fwhm_mm=psf_fwhm_mm, recovery=recovery,
                          counted_volume_elasticity=counted_volume_elasticity(stack, mask),
                          psf_rel_sd=psf_rel_sd, psf_elasticity=psf_elasticity.get(name, 0.0))
        ms_rel, ms_note = model_selection_rel_sd(fit)
        budget = structure_uncertainty(name, tia_mbq_h=fit.tia_mbq_h, tia_fit_sd_mbq_h=fit.tia_sd_mbq_h,
                                       volume_ml=volume_ml, volume_sd_ml=volume_sd_ml, dose_gy=mean_gy,
                                       pvc=terms, tia_fit_dof=fit.tia_dof, model_selection_rel_sd=ms_rel,
                                       cf_rel_sd=DEFAULT_CF_REL_SD if cf_rel_sd is None else float(cf_rel_sd))
        dvhs[name] = (np.asarray(stats.dvh_dose_gy) * scale, np.asarray(stats.dvh_volume_fraction))
        results[name] = {
            "volume_ml": _finite(volume_ml, 3), "mass_g": _finite(mass_g, 3),
            "activity_mbq": [_finite(a, 4) for a in activities[name]],
            "activity_sd_mbq": [_finite(a, 4) for a in activity_sd[name]],
            "recovery_coefficient": _finite(rc_values[name], 4), "pvc_method": pvc_methods[name],
            "pvc_reason": pvc_reasons.get(name, ""),
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
            "uncertainty_dof": _finite(budget.dose.effective_dof, 1),
            "uncertainty_coverage_k95": _finite(budget.dose.coverage_factor_k95, 3),
            "fit_tia_dof": _finite(fit.tia_dof, 1), "fit_variance_scale": _finite(fit.variance_scale, 4),
            "model_selection": ms_note,
            "fit_model": fit.model, "fit_selection": fit.selection_reason,
            "effective_half_life_h": _finite(fit.effective_half_life_h, 3),
            "voxel_tia_scale": _finite(scales[name], 4),
        }
    provenance = {
        "kinetics": {"structure_models": {n: f.model for n, f in fits.items()}, "voxel_model_counts": voxel_counts,
                     "failed_structures": failed, "model_selection": AICC_CONVENTION,
                     "voxel_tia": "per-voxel fits, scaled inside each structure so that its voxels weighted by "
                                  "the structure's shares sum to its fitted TIA" if tia_scaling == "fractional shares"
                                  else "per-voxel fits, scaled over each structure's binary mask to its fitted TIA",
                     "partial_volume_correction": pvc_used},
        "dose": {"method": method, "kernel": getattr(kernel, "provenance", None), "nuclide": LU177.name,
                 "structure_mean": "electrons: TIA x mean electron energy / structure mass (CT density at CT "
                                   "resolution when the segmentation file is given, else on the SPECT grid with "
                                   "voxel fractions); photons: mass-weighted mean of the photon dose map",
                 "voxel_statistics": "voxel_map_mean_gy and min/max/median/D2/D50/D98/DVH from the dose map over "
                                     "the voxels the structure has a share of, each weighted by that share x voxel "
                                     "mass; all but voxel_map_mean_gy scaled by mean_gy / voxel_map_mean_gy",
                 "map_consistency": "dose.nrrd, bed.nrrd and RT Dose come from the same map; its share-weighted "
                                    "mean over a structure equals mean_gy within the electron energy the kernel "
                                    f"carries out of a voxel ({100 * spill:.1f} % at this voxel size; 0 for led) "
                                    "where the structure's mass on the SPECT grid matches its CT mass",
                 "kernel_electron_spill_pct": _finite(100 * spill, 2),
                 "density": "CT HU -> density curve" if ct_grid is not None else "water"},
        "bed": {"by_prefix": [list(p) for p in BED_PARAMETERS],
                "structure_kinds": "structure name -> kind by startnet.structure_kinds (tumour, tumor, lesion, "
                                   "metasta..., met: tumour); '' = every other structure",
                "voxel_map": "each structure's voxels with its own alpha/beta and T_rep, G = k / (k + ln2 / T_rep) "
                             "from the voxel clearance rate k; voxels outside every structure alpha/beta "
                             f"{BED_PARAMETERS[-1][1]:g} Gy, T_rep {BED_PARAMETERS[-1][2]:g} h"},
        "uncertainty": f"GUM per PVC method used: calibration factor (correlated), TAC fit with absolute "
                       f"per-time-point SDs ({POINT_SD_MODEL.describe()}; covariance x max(1, chi2_red), "
                       "Student-t coverage via Welch-Satterthwaite), model selection (Akaike weights), recovery "
                       "curve (rc only), uncorrected under-estimate of model-based PVC (plain GTM, rc, none) as a "
                       f"one-sided bias, volume (systematic boundary shift SD {BOUNDARY_SD_MM:g} mm over the "
                       "surface; activity sensitivity of the method partially cancelling the mass)",
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
            k_map[region] = np.float32(math.log(2.0) / fit.bed_half_life_h)  # population T_eff for STP
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
