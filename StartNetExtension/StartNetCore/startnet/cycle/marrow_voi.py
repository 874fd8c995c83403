"""Marrow VOI step of a run: L2-L4 vertebrae as structures, and the image-based marrow block.

``--marrow-voi segments`` takes the VOIs from the segmentation (``vertebra_L2..L4`` or ``marrow``; an
InputError names what to supply when they are absent); ``--marrow-voi ct`` segments L2-L4 from the
reference CT (:mod:`startnet.segmentation.vertebrae`) unless the segmentation has them. Without the
option, the image-based block is written whenever the segmentation holds such VOIs. CT-segmented
vertebrae are carved out of the structures they overlap (e.g. a ``spine`` segment), so the
partial-volume correction sees disjoint regions; those structures' masses then come from the SPECT
grid and the run notes it. The VOIs are analysed like every structure (kinetics, partial-volume
correction, dose); :mod:`startnet.dosimetry.marrow_image` turns their TIA into the marrow dose.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any, Dict, Optional

import numpy as np
import SimpleITK as sitk

from startnet.dosimetry.marrow_image import MarrowMassModel, image_marrow_dose, marrow_voi_names
from startnet.errors import InputError
from startnet.segmentation.vertebrae import SUPPLY

MARROW_VOI_SOURCES = ("segments", "ct")
GTM_REL_SD = 0.10  # plain GTM on the marrow VOIs, phantom check at 7 mm voxels (about 10 %)


def _kidney_centroid_z_mm(structures, grid: sitk.Image) -> float:
    kidneys = [m for n, m in structures.masks.items() if n in ("kidney_left", "kidney_right") and m.any()]
    if not kidneys:
        raise InputError(f"--marrow-voi ct needs the kidneys (kidney_left, kidney_right) to find the lumbar level; "
                         f"{SUPPLY}")
    zs = [grid.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, float(np.nonzero(m)[0].mean())))[2]
          for m in kidneys]
    return float(np.mean(zs))


def add_marrow_vois(structures, source: Optional[str], ct_hu: Optional[sitk.Image], grid: sitk.Image):
    """The structures with the marrow VOIs the option asks for (unchanged without it)."""
    if source is None:
        return structures
    if source not in MARROW_VOI_SOURCES:
        raise InputError(f"--marrow-voi {source!r}: expected one of {', '.join(MARROW_VOI_SOURCES)}")
    levels, marrow = marrow_voi_names(structures.names())
    if levels or marrow:
        if source == "ct":
            structures.log.append("marrow VOI: taken from the segmentation's "
                                  f"{', '.join(list(levels.values()) + ([marrow] if marrow else []))}; the CT was not "
                                  "segmented")
        return structures
    if source == "segments":
        raise InputError(f"--marrow-voi segments: the segmentation has no marrow VOI; {SUPPLY}, or use --marrow-voi ct")
    if ct_hu is None:
        raise InputError(f"--marrow-voi ct: the reference time point has no CT; {SUPPLY}")
    from startnet.segmentation import resample_mask
    from startnet.segmentation.vertebrae import lumbar_vertebrae_from_ct

    found = lumbar_vertebrae_from_ct(ct_hu, _kidney_centroid_z_mm(structures, grid))
    density = None
    masks = OrderedDict(structures.masks)
    fractions = dict(structures.fraction_maps())
    masses = dict(structures.ct_masses_g)
    carved = []
    voxel_ml = float(np.prod(ct_hu.GetSpacing())) / 1000.0
    for level, image in found.masks.items():
        name = f"vertebra_{level}"
        mask, fraction = resample_mask(image, grid, fractional=True)
        for other in list(masks):
            if np.any(masks[other] & mask):  # a structure containing the vertebra (e.g. 'spine')
                if other not in carved:
                    carved.append(other)
                fractions[other] = np.clip(fractions[other] - fraction, 0.0, 1.0).astype(np.float32)
                masks[other] = masks[other] & ~mask
        masks[name], fractions[name] = mask, fraction.astype(np.float32)
        if density is None:
            from startnet.dosimetry import hu_to_density_g_per_ml

            density = hu_to_density_g_per_ml(sitk.GetArrayViewFromImage(ct_hu))
        masses[name] = float(density[sitk.GetArrayViewFromImage(image) > 0].sum(dtype=np.float64)) * voxel_ml
    for other in carved:
        masses.pop(other, None)
    log = list(structures.log) + found.notes
    if carved:
        log.append(f"marrow VOI: vertebra_L2..L4 carved out of {', '.join(carved)} (their masses from the SPECT grid)")
    return replace(structures, masks=masks, fractions=fractions, ct_masses_g=masses, log=log)


def voi_activities_mbq(registered, structures, names, psf_fwhm_mm: float) -> Dict[str, np.ndarray]:
    """Activity (MBq) of each marrow VOI per time point by the plain geometric transfer matrix.

    The VOI's marrow is uniform by the model, and it is colder than the blood-filled tissue around
    it: the enlarged-VOI variant the run uses for hot structures subtracts the surrounding spill-in
    from few own counts and reads such VOIs far too low (on the phantom 0.02-0.4 x truth), while
    plain GTM reads them within about 10 %.
    """
    from startnet.cycle.analyse import body_fraction_on_grid
    from startnet.cycle.quantify import gtm_activities, normalised

    grid = registered.reference_grid
    images = [sitk.GetArrayViewFromImage(im).astype(np.float32) for im in registered.activity_bqml]
    body = None if registered.ct_hu is None else body_fraction_on_grid(registered.ct_hu, grid)
    gtm = gtm_activities(images, normalised(structures.fraction_maps()), tuple(reversed(grid.GetSpacing())),
                         psf_fwhm_mm, body, enlarged_voi_fwhm=0.0)
    return {name: np.asarray(gtm.activity_mbq[name], float) for name in names}


def image_marrow_results(options, result, voi_source: str) -> Optional[Dict[str, Any]]:
    """The ``marrow.image_based`` block from a run's analysed VOIs (``CycleResult``), or None when it has none."""
    from startnet.cycle.analyse import POINT_SD_MODEL, timepoint_counts_per_mbq
    from startnet.dosimetry.uncertainty import DEFAULT_CF_REL_SD
    from startnet.kinetics import fit_tac
    from startnet.kinetics.point_sd import activity_sd_mbq

    structure_results = result.results["structures"]
    registered = result.registered
    levels, marrow = marrow_voi_names(structure_results)
    names = list(levels.values()) or ([marrow] if marrow else [])
    if not names:
        if getattr(options, "marrow_voi", None):
            raise InputError(f"--marrow-voi {options.marrow_voi}: the marrow VOI has no measurable activity or its "
                             f"fit failed (see the warnings); {SUPPLY}")
        return None
    activities = voi_activities_mbq(registered, result.structures, names, options.psf_fwhm())
    counts = timepoint_counts_per_mbq(registered)
    voi, fits = {}, {}
    for name in names:
        sd = activity_sd_mbq(activities[name], counts, POINT_SD_MODEL, name)
        fit = fit_tac(registered.times_h, activities[name], sigma_mbq=sd, structure=name)
        fits[name] = fit
        tia = float(fit.tia_mbq_h)
        tia_sd = tia * ((float(fit.tia_sd_mbq_h) / tia if tia > 0 else 0.0) ** 2 + DEFAULT_CF_REL_SD ** 2
                        + GTM_REL_SD ** 2) ** 0.5
        voi[name] = {"tia_mbq_h": tia, "tia_sd_mbq_h": tia_sd, "volume_ml": structure_results[name]["volume_ml"]}
    model = MarrowMassModel(model=getattr(options, "marrow_mass_model", None) or "voi",
                            red_marrow_g_per_ml_override=getattr(options, "red_marrow_g_per_ml", None))
    imaged = None
    if options.patient_mass_kg:
        from startnet.cycle.marrow import imaged_tia_mbq_h

        imaged = imaged_tia_mbq_h(registered)
    dose = image_marrow_dose(voi, model=model, patient_mass_kg=options.patient_mass_kg, imaged_tia_mbq_h=imaged,
                             voi_source=voi_source, nuclide=registered.cycle.nuclide)
    block = dose.to_dict()
    block["activity_method"] = ("plain geometric transfer matrix (Rousset 1998) over all structures, PSF "
                                f"{options.psf_fwhm():g} mm FWHM; TIA uncertainty: fit, calibration "
                                f"{100 * DEFAULT_CF_REL_SD:g} %, GTM {100 * GTM_REL_SD:g} %")
    for name in names:
        block["voi"][name].update(activity_mbq=[round(float(a), 4) for a in activities[name]],
                                  fit_model=fits[name].model)
    block["hours_post_injection"] = [round(float(t), 3) for t in registered.times_h]
    block["warnings"] += [f"{name}: {w}" for name in names for w in fits[name].warnings]
    if len(levels) not in (0, 3):
        block["warnings"].append(f"only {', '.join(levels)} of L2-L4 in the segmentation")
    return block
