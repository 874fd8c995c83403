"""The PSF checked on the patient's own SPECT (``startnet.calibration.patient_psf``) on the digital phantom.

A 15 mm camera reads as blurrier than the 11 mm default (warning), an 11 mm one agrees (no warning),
and blur-free images are sharper: the correction then uses the estimate, not the assumed 11 mm.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from startnet.calibration.patient_psf import check_patient_psf
from startnet.phantom import PhantomConfig, build_phantom
from startnet.segmentation import resample_mask


def _inputs(psf_mm: float, blur: bool):
    phantom = build_phantom(PhantomConfig(preset="small", seed=3, psf_fwhm_mm=psf_mm, blur=blur, motion=False,
                                          timepoints_h=(24.0, 96.0)))
    ref = phantom.timepoints[phantom.reference_index].spect_bqml
    fractions = {}
    for label, name in phantom.label_names.items():
        if name != "body":
            fractions[name] = resample_mask(phantom.labels == label, ref, fractional=True)[1]
    body = resample_mask(phantom.ct_hu > -500, ref, fractional=True)[1]
    images = [sitk.GetArrayFromImage(tp.spect_bqml) for tp in phantom.timepoints]
    return images, fractions, tuple(reversed(ref.GetSpacing())), body


@pytest.mark.parametrize("psf_mm, blur, warned, corrected_with_estimate", [
    (15.0, True, True, False), (11.0, True, False, False), (11.0, False, True, True)])
def test_effective_resolution_around_the_structures(psf_mm, blur, warned, corrected_with_estimate):
    images, fractions, spacing, body = _inputs(psf_mm, blur)
    used, record, warnings = check_patient_psf(images, fractions, spacing, 11.0, "default", body)
    assert bool(warnings) == warned
    assert all(w.startswith("image resolution") and "11.0 mm" in w for w in warnings)
    if blur:
        assert record["estimated_fwhm_mm"] == pytest.approx(psf_mm, rel=0.15)
    if corrected_with_estimate:
        assert used == pytest.approx(record["estimated_fwhm_mm"], abs=1e-3) and used < 0.8 * 11.0
    else:
        assert used == 11.0
    assert np.isfinite(record["ratio"])
