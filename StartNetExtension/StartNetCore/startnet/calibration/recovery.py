"""Recovery coefficients per sphere and the PSF of a sphere-phantom SPECT (``startnet calibrate recovery``).

True concentrations at the acquisition start: SPHERES.json's, decayed from its reference time.
Per sphere (voxel shares f, image y in Bq/mL, fitted local background b, :mod:`.psf_fit`):

- ``rc_mean`` = mean of y over the sphere's physical volume (weights f) / true sphere concentration
  (what the image reads; depends on the sphere-to-background ratio);
- ``rc`` = (that mean - b) / (true sphere - true background concentration): the recovery of the
  sphere's excess over its surroundings, i.e. the recovery coefficient a sphere in a cold background
  would have. This is the camera's property the partial-volume correction's RC(V) curve is (the
  shipped default curve is the same quantity for a Gaussian PSF), so CAL.json's ``recovery`` holds it;
- ``rc_count_conserving`` = counts of the excess in the VOI grown by ``VOI_FWHM`` x FWHM around the
  sphere (minus the other spheres' modelled spill-in) / true excess activity: what the default
  partial-volume correction (enlarged VOI) relies on; 1 for a camera that conserves counts.

Standard uncertainties: noise of the mean (residual SD of the fit, white noise), of the background,
and the concentrations' relative SD (SPHERES.json ``concentration_rel_sd``). A sphere whose grown VOI
holds less than ``MIN_COUNT_FRACTION`` or more than 1/``MIN_COUNT_FRACTION`` of its expected excess
counts (beyond 4 standard uncertainties) is refused: its centre or volume is wrong.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from startnet.calibration.acquisition import Acquisition
from startnet.calibration.psf_fit import FIT_REACH_MM, blur, fit_psf
from startnet.calibration.spheres import SpherePhantom, sphere_share
from startnet.errors import InputError

VOI_FWHM = 1.5
MIN_COUNT_FRACTION = 0.7
OFFSET_WARNING_FWHM = 0.25


def _crop(image: sitk.Image, blocks, reach_mm: float):
    size = np.array(image.GetSize())
    spacing = np.array(image.GetSpacing())
    pad = np.ceil(reach_mm / spacing).astype(int) + 1
    low = np.min([b[0] for b in blocks], axis=0) - pad
    high = np.max([np.array(b[0]) + np.array(b[1].shape[::-1]) for b in blocks], axis=0) + pad
    low, high = np.maximum(low, 0), np.minimum(high, size)
    return low, high


def measure_recovery(acq: Acquisition, phantom: SpherePhantom) -> Dict[str, Any]:
    """CAL.json values (psf_fwhm_mm, psf_fwhm_rel_sd, recovery, spheres, psf_fit) and warnings."""
    image = acq.image
    where = f"{phantom.path}: " if phantom.path else ""
    blocks = [sphere_share(image, s, where) for s in phantom.spheres]
    spacing_zyx = tuple(reversed(image.GetSpacing()))
    # the fit reaches FIT_REACH_MM; the VOI grows with the fitted FWHM (up to the fit's upper bound)
    low, high = _crop(image, blocks, FIT_REACH_MM + VOI_FWHM * 40.0)
    crop = tuple(slice(int(low[a]), int(high[a])) for a in (2, 1, 0))
    values = sitk.GetArrayViewFromImage(image)[crop].astype(np.float64)
    shares = []
    for (start, block) in blocks:
        full = np.zeros(values.shape)
        z0, y0, x0 = start[2] - low[2], start[1] - low[1], start[0] - low[0]
        full[z0:z0 + block.shape[0], y0:y0 + block.shape[1], x0:x0 + block.shape[2]] = block
        shares.append(full)
    distances = np.stack([ndimage.distance_transform_edt(f < 0.5, sampling=spacing_zyx) for f in shares])
    nearest = np.argmin(distances, axis=0)
    fit_mask = distances.min(axis=0) <= FIT_REACH_MM
    fit = fit_psf(values, np.sum(shares, axis=0), fit_mask, nearest[fit_mask], len(shares), spacing_zyx)

    lam = math.log(2.0) / (float(acq.conversion["half_life_h"]) * 3600.0)
    decay = math.exp(-lam * (acq.acquisition_utc - phantom.reference_datetime).total_seconds())
    c_s, c_b = phantom.sphere_kbq_ml * 1e3 * decay, phantom.background_kbq_ml * 1e3 * decay
    excess = c_s - c_b
    voxel_ml = acq.voxel_ml
    blurred = [blur(f, spacing_zyx, fit.fwhm_mm) for f in shares]
    total_blurred = np.sum(blurred, axis=0)
    positions = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(values.shape, spacing_zyx)], indexing="ij"))
    spheres_out: List[Dict[str, Any]] = []
    warnings: List[str] = list(acq.warnings)
    for k, sphere in enumerate(phantom.spheres):
        f = shares[k]
        b, b_sd = fit.background_bqml[k], fit.background_sd_bqml[k]
        mean = float(np.sum(f * values) / np.sum(f))
        mean_sd = fit.residual_sd_bqml * math.sqrt(float(np.sum(f * f))) / float(np.sum(f))
        rc = (mean - b) / excess
        rc_sd = math.hypot(math.hypot(mean_sd, b_sd) / excess, rc * phantom.concentration_rel_sd)
        voi = distances[k] <= VOI_FWHM * fit.fwhm_mm
        spill = float(np.sum((total_blurred - blurred[k])[voi])) * (fit.sphere_bqml - b)
        own = float(np.sum(values[voi] - b)) - spill
        true_excess = excess * sphere.volume_ml / voxel_ml
        rc_cc = own / true_excess
        cc_sd = math.hypot(fit.residual_sd_bqml * math.sqrt(float(voi.sum())), b_sd * float(voi.sum())) / true_excess
        cc_sd = math.hypot(cc_sd, rc_cc * phantom.concentration_rel_sd)
        if abs(math.log(max(rc_cc, 1e-6))) > -math.log(MIN_COUNT_FRACTION) and abs(rc_cc - 1.0) > 4 * cc_sd:
            raise InputError(
                f"{where}sphere '{sphere.name}' (centre_mm {list(sphere.centre_mm)}, {sphere.volume_ml:g} mL): its VOI "
                f"({VOI_FWHM:g} FWHM = {VOI_FWHM * fit.fwhm_mm:.1f} mm around it) holds {100 * rc_cc:.0f} % of the "
                "sphere's expected excess counts; check centre_mm, volume_ml and the concentrations")
        weights = np.clip(values - b, 0.0, None) * voi
        if weights.sum() > 0:
            centroid = (positions * weights).reshape(3, -1).sum(axis=1) / weights.sum()
            expected = (positions * f).reshape(3, -1).sum(axis=1) / f.sum()
            offset = float(np.linalg.norm(centroid - expected))
            if offset > OFFSET_WARNING_FWHM * fit.fwhm_mm and sphere.radius_mm * 2 > fit.fwhm_mm:
                warnings.append(f"sphere '{sphere.name}': its counts are centred {offset:.1f} mm from centre_mm "
                                f"{list(sphere.centre_mm)}; check the sphere's position")
        spheres_out.append({"name": sphere.name, "centre_mm": list(sphere.centre_mm), "volume_ml": sphere.volume_ml,
                            "rc": rc, "rc_sd": rc_sd, "rc_mean": mean / c_s,
                            "rc_mean_sd": math.hypot(mean_sd / c_s, mean / c_s * phantom.concentration_rel_sd),
                            "rc_count_conserving": rc_cc, "rc_count_conserving_sd": cc_sd,
                            "background_bqml": b, "mean_bqml": mean})
    recovery = sorted(({"volume_ml": s["volume_ml"], "rc": s["rc"], "rc_sd": s["rc_sd"]} for s in spheres_out),
                      key=lambda r: r["volume_ml"])
    details = {"sphere_concentration_at_acquisition_bqml": c_s, "background_concentration_at_acquisition_bqml": c_b,
               "acquisition_start_utc": acq.acquisition_utc.isoformat(),
               "reference_datetime_utc": phantom.reference_datetime.isoformat(),
               "fitted_sphere_concentration_bqml": fit.sphere_bqml, "fit_voxels": fit.n_voxels,
               "residual_sd_bqml": fit.residual_sd_bqml, "fit_evaluations": fit.evaluations,
               "fwhm_sd_mm": fit.fwhm_sd_mm, "fit_reach_mm": FIT_REACH_MM, "voi_fwhm": VOI_FWHM,
               "model": "isotropic Gaussian PSF, one sphere concentration, a local background per sphere"}
    values_out = {"psf_fwhm_mm": fit.fwhm_mm, "psf_fwhm_rel_sd": fit.fwhm_sd_mm / fit.fwhm_mm, "recovery": recovery,
                  "spheres": spheres_out, "psf_fit": details}
    return {"values": values_out, "warnings": warnings}
