"""One 177Lu cycle from DICOM to absorbed-dose results: ``run_cycle`` chains the cycle's steps.

    load (cycle.load) -> register (cycle.register) -> structures (cycle.structures, cycle.segments)
    -> analyse: kinetics, dose, BED, uncertainty (cycle.analyse) and results.json (cycle.results)
    -> optional trial record (cycle.trial_record) -> outputs (cycle.outputs)

Every step is a plain function taking in-memory inputs (the Slicer modules call the same ones on
the scene's nodes); this module decides the order, the reference grid (the reference time
point's SPECT grid), and records provenance: software version, parameters, input Series Instance
UIDs, calibration and kernel used, per-step timings.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from startnet.cycle.load import load_timepoints
from startnet.cycle.pvc import DEFAULT_PVC, PVC_METHODS
from startnet.cycle.register import (  # noqa: F401  (registration_entry: public name of the run step)
    RegisteredCycle,
    choose_reference,
    register_cycle_to_reference,
    registration_entry,
)
from startnet.cycle.results import CycleResult, analyse_cycle, build_results, radiopharmaceutical_name  # noqa: F401
from startnet.cycle.structures import automatic_structures, structures_from_file
from startnet.dicomio import Overrides
from startnet.dosimetry.methods import DEFAULT_DOSE_METHOD, DOSE_METHODS
from startnet.errors import InputError
from startnet.progress import Progress, ProgressCallback

LOG = logging.getLogger(__name__)
METHODS = tuple(DOSE_METHODS)
STAGES = (("load", 30.0), ("register", 15.0), ("segment", 8.0), ("quantify", 8.0), ("kinetics", 10.0),
          ("dose", 6.0), ("results", 3.0), ("outputs", 20.0))


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
    write_scene: bool = True
    write_report: bool = True

    def psf_fwhm(self) -> float:
        from startnet.segmentation.recovery import DEFAULT_PSF_FWHM_MM

        return float(self.psf_fwhm_mm or DEFAULT_PSF_FWHM_MM)

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
        if self.trial_db and (not self.patient_id or self.cycle is None):
            raise InputError("--trial-db needs --patient ID and --cycle N")


def run_cycle(options: RunOptions, progress_callback: Optional[ProgressCallback] = None) -> CycleResult:
    """Run one cycle end to end and write every output into ``options.out_dir``."""
    from startnet.cycle.outputs import prepare_output_dir, write_outputs

    options.validate()
    staging = prepare_output_dir(options.out_dir)  # fails early on an unwritable folder
    progress = Progress(STAGES, progress_callback)

    progress.stage("load", "reading DICOM and converting SPECT to Bq/mL")
    overrides = Overrides(injection_datetime=options.injection_datetime,
                          injected_activity_mbq=options.injected_activity_mbq,
                          calibration_cps_per_mbq=options.calibration_cps_per_mbq)
    cycle, discovery = load_timepoints(options.input_dir, overrides)
    reference_index = choose_reference([tp.hours_post_injection for tp in cycle.timepoints],
                                       options.reference_timepoint)

    progress.stage("register", "registering time points onto the reference")
    registered = register_cycle_to_reference(cycle, reference_index, progress)

    progress.stage("segment", "structures on the reference grid")
    if options.segmentation_path:
        structures = structures_from_file(options.segmentation_path, registered.reference_grid,
                                          labels_path=options.labels_path, ct_hu=registered.ct_hu)
    else:
        structures = automatic_structures(registered.ct_hu, registered.reference_grid)

    result = analyse_cycle(options, registered, structures, progress, discovery=discovery)
    results = result.results

    trial_status = None
    if options.trial_db:
        from startnet.cycle.trial_record import record_cycle_results

        trial_status, trial_warnings = record_cycle_results(
            options.trial_db, options.patient_id, options.cycle, cycle.injection_datetime.date(),
            cycle.injected_activity_mbq / 1000.0, results, results_path=str(Path(options.out_dir) / "results.json"))
        results["trial"] = trial_status
        results["warnings"] += [f"trial record: {w}" for w in trial_warnings]

    progress.stage("outputs", "writing results, exports, scene and report")
    result.trial_status = trial_status
    result.files = write_outputs(result, options, staging, progress)
    progress.done()
    results["provenance"]["timings_s"] = {k: round(v, 3) for k, v in progress.timings_s.items()}
    return result
