"""Marrow step of a run: red-marrow dose from ``--blood-samples`` plus the remainder of the body from the images.

The cross-dose source is all the activity the registered SPECTs hold (per time point, on the
reference grid: remainder of the body and organs alike); its time integral feeds the photon
cross-dose (:mod:`startnet.dosimetry.marrow` states the model).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import SimpleITK as sitk

from startnet.dosimetry.marrow import BloodSamples, blood_marrow_dose, read_blood_samples


def load_blood_samples(options, cycle) -> Optional[BloodSamples]:
    """The run's blood samples (read early, so a bad CSV fails before the analysis), or None."""
    if not getattr(options, "blood_samples_path", None):
        return None
    return read_blood_samples(options.blood_samples_path, cycle.injection_datetime)


def imaged_tia_mbq_h(registered) -> float:
    """TIA (MBq h) of all the activity in the SPECT field of view."""
    from startnet.kinetics import fit_tac

    voxel_ml = float(np.prod(registered.reference_grid.GetSpacing())) / 1000.0
    activity = []
    for image in registered.activity_bqml:
        values = sitk.GetArrayViewFromImage(image)
        activity.append(float(np.clip(values, 0, None).sum(dtype=np.float64)) * voxel_ml / 1.0e6)
    fit = fit_tac(registered.times_h, np.asarray(activity), structure="imaged body")
    return float(fit.tia_mbq_h)


def marrow_results(options, samples: BloodSamples, registered) -> Dict[str, Any]:
    """The results.json ``marrow`` block."""
    remainder = imaged_tia_mbq_h(registered) if options.patient_mass_kg else None
    dose = blood_marrow_dose(samples, ratio=options.marrow_blood_ratio, patient_mass_kg=options.patient_mass_kg,
                             remainder_tia_mbq_h=remainder, nuclide=registered.cycle.nuclide)
    block = dose.to_dict()
    block["blood_samples"] = {"file": samples.path, "count": int(samples.times_h.size),
                              "hours_post_injection": [round(float(t), 3) for t in samples.times_h]}
    if samples.haematocrit is not None:
        block["haematocrit_mean"] = round(float(np.mean(samples.haematocrit)), 4)
    return block
