"""The parameters of one cycle's run (the ``startnet run`` command line) and their checks.

Kept apart from :mod:`startnet.cycle.run` (which re-exports it) so that checking options — a batch
manifest's rows before any work, a Slicer panel's values — does not import the whole pipeline
(0.44 s: registration, kinetics, dose engines).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Tuple

from startnet.cycle.pvc import DEFAULT_PVC, PVC_METHODS
from startnet.dosimetry.methods import DEFAULT_DOSE_METHOD, DOSE_METHODS
from startnet.errors import InputError

METHODS = tuple(DOSE_METHODS)


@dataclass
class RunOptions:
    """Parameters of one run (the ``startnet run`` command line)."""

    input_dir: str
    out_dir: str
    segmentation_path: Optional[str] = None
    labels_path: Optional[str] = None
    reference_timepoint: Optional[int] = None
    calibration_cps_per_mbq: Optional[float] = None
    method: str = DEFAULT_DOSE_METHOD
    injection_datetime: Optional[_dt.datetime] = None
    injected_activity_mbq: Optional[float] = None
    patient_id: Optional[str] = None
    cycle: Optional[int] = None
    trial_db: Optional[str] = None
    pvc: str = DEFAULT_PVC
    psf_fwhm_mm: Optional[float] = None
    dead_time_s: Optional[float] = None
    count_rate_kcps: Optional[Tuple[float, ...]] = None
    write_scene: bool = True
    write_report: bool = True
    # CAL.json or a folder of them (``startnet calibrate``); the one chosen for the SPECT's camera is
    # ``applied_calibration`` (``startnet.calibration.use.AppliedCalibration``, set by ``run_cycle``)
    calibration_path: Optional[str] = None
    # red-marrow dose from blood samples (``startnet.dosimetry.marrow``)
    blood_samples_path: Optional[str] = None
    marrow_blood_ratio: Optional[str] = None  # a number or "sgouros"; default 1.0
    patient_mass_kg: Optional[float] = None
    # lesion identity across cycles (``startnet.lesions``): {segment: lesion ID} overrides of the matching
    lesion_map_path: Optional[str] = None
    # where earlier cycles' run folders are looked for when no longer at their recorded paths (searched recursively)
    previous_runs_dir: Optional[str] = None
    # image-based red-marrow dose (``startnet.cycle.marrow_voi``): "segments" | "ct" | None
    marrow_voi: Optional[str] = None
    marrow_mass_model: Optional[str] = None  # "voi" (default) | "reference"
    red_marrow_g_per_ml: Optional[float] = None
    applied_calibration: Optional[Any] = field(default=None, repr=False)

    def psf_fwhm(self) -> float:
        """The PSF for the partial-volume correction: --psf-fwhm-mm, else the calibration's, else the default."""
        from startnet.segmentation.recovery import DEFAULT_PSF_FWHM_MM

        calibrated = getattr(self.applied_calibration, "psf_fwhm_mm", None)
        return float(self.psf_fwhm_mm or calibrated or DEFAULT_PSF_FWHM_MM)

    def validate(self) -> None:
        if self.pvc not in PVC_METHODS:
            raise InputError(f"--pvc {self.pvc!r}: expected one of {', '.join(PVC_METHODS)}")
        if self.psf_fwhm_mm is not None and not self.psf_fwhm_mm > 0:
            raise InputError(f"--psf-fwhm-mm must be > 0 mm, got {self.psf_fwhm_mm}")
        if self.method not in METHODS:
            raise InputError(f"--method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.labels_path and not self.segmentation_path:
            raise InputError("--labels needs --segmentation (a labelmap file)")
        if self.calibration_cps_per_mbq is not None and not self.calibration_cps_per_mbq > 0:
            raise InputError(f"--calibration-cps-per-mbq must be > 0, got {self.calibration_cps_per_mbq}")
        if self.dead_time_s is not None and not self.dead_time_s >= 0:
            raise InputError(f"--dead-time-s must be >= 0 s, got {self.dead_time_s}")
        if self.count_rate_kcps is not None and not all(v > 0 for v in self.count_rate_kcps):
            raise InputError(f"--count-rate-kcps values must be > 0 kcps, got {list(self.count_rate_kcps)}")
        if self.patient_mass_kg is not None and not self.patient_mass_kg > 0:
            raise InputError(f"--patient-mass-kg must be > 0 kg, got {self.patient_mass_kg}")
        if self.red_marrow_g_per_ml is not None and not 0 < self.red_marrow_g_per_ml <= 1.1:
            raise InputError(f"--red-marrow-g-per-ml must be in (0, 1.1] g/mL, got {self.red_marrow_g_per_ml}")
        if self.marrow_mass_model == "reference" and not self.patient_mass_kg:
            raise InputError("--marrow-mass-model reference needs --patient-mass-kg KG")
        if self.marrow_blood_ratio is not None and not self.blood_samples_path:
            raise InputError("--marrow-blood-ratio needs --blood-samples BLOOD.csv")
        if self.trial_db and (not self.patient_id or self.cycle is None):
            raise InputError("--trial-db needs --patient ID and --cycle N")
        if self.previous_runs_dir is not None and not Path(self.previous_runs_dir).is_dir():
            raise InputError(f"--previous-runs {self.previous_runs_dir}: not a folder (expected the folder holding "
                             "earlier cycles' run folders)")
