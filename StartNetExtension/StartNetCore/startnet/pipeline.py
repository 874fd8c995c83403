"""One 177Lu cycle from a DICOM folder to absorbed-dose results: the only module chaining the steps.

    load (dicomio) -> register (registration) -> structures (segmentation) -> kinetics
    -> dose (dosimetry) -> structure results (BED, uncertainty) -> outputs (report, exports)
    -> optional trial record

Every step is a plain function of the package; this module decides the order, the reference
grid (the reference time point's SPECT grid), and records provenance: software version,
parameters, input Series Instance UIDs, calibration and kernel used, per-step timings.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from startnet import __version__
from startnet.about import environment_report
from startnet.cycle_analysis import StructureAnalysis, analyse_structures, kidneys_summary
from startnet.dicomio import Cycle, Overrides, load_cycle
from startnet.errors import InputError
from startnet.progress import Progress, ProgressCallback
from startnet.structures import Structures, automatic_structures, structures_from_file

LOG = logging.getLogger(__name__)
METHODS = ("led", "vsv", "vsv-density")
STAGES = (("load", 30.0), ("register", 15.0), ("segment", 8.0), ("kinetics", 12.0), ("dose", 12.0),
          ("results", 3.0), ("outputs", 20.0))


@dataclass
class RunOptions:
    """Parameters of one run (the ``startnet run`` command line)."""

    input_dir: str
    out_dir: str
    segmentation_path: Optional[str] = None
    labels_path: Optional[str] = None
    reference_timepoint: Optional[int] = None
    calibration_cps_per_mbq: Optional[float] = None
    method: str = "vsv-density"
    injection_datetime: Optional[_dt.datetime] = None
    injected_activity_mbq: Optional[float] = None
    patient_id: Optional[str] = None
    cycle: Optional[int] = None
    trial_db: Optional[str] = None
    recovery_correction: bool = True
    write_scene: bool = True
    write_report: bool = True

    def validate(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"--method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.labels_path and not self.segmentation_path:
            raise InputError("--labels needs --segmentation (a labelmap file)")
        if self.calibration_cps_per_mbq is not None and not self.calibration_cps_per_mbq > 0:
            raise InputError(f"--calibration-cps-per-mbq must be > 0, got {self.calibration_cps_per_mbq}")
        if self.trial_db and (not self.patient_id or self.cycle is None):
            raise InputError("--trial-db needs --patient ID and --cycle N")


@dataclass
class RegisteredCycle:
    """All time points on the reference SPECT grid."""

    cycle: Cycle
    reference_index: int
    times_h: np.ndarray
    activity_bqml: List[sitk.Image]  # per time point, on the reference grid
    ct_hu: Optional[sitk.Image]  # reference CT (its own grid)
    registrations: List[Dict[str, Any]]
    warnings: List[str] = field(default_factory=list)

    @property
    def reference_grid(self) -> sitk.Image:
        return self.activity_bqml[self.reference_index]


@dataclass
class CycleResult:
    """What a run produced: the results dictionary and the arrays behind it."""

    results: Dict[str, Any]
    registered: RegisteredCycle
    structures: Structures
    analysis: StructureAnalysis
    files: Dict[str, str] = field(default_factory=dict)
    trial_status: Optional[Dict[str, Any]] = None


def choose_reference(times_h, requested: Optional[int]) -> int:
    """Index of the reference time point: the requested one, else the one closest to 24 h."""
    n = len(times_h)
    if requested is not None:
        if not 0 <= requested < n:
            raise InputError(f"--reference-timepoint {requested}: the cycle has {n} time points (0..{n - 1})")
        return int(requested)
    return int(np.argmin(np.abs(np.asarray(times_h) - 24.0)))


def register_cycle_to_reference(cycle: Cycle, reference_index: int, progress: Progress) -> RegisteredCycle:
    """Rigid CT-to-CT registration of each time point; SPECT resampled activity-conserving."""
    from startnet.registration import register_rigid, resample_activity_checked

    reference = cycle.timepoints[reference_index]
    grid = reference.spect_bqml
    activity, registrations, warnings = [], [], []
    n = len(cycle.timepoints)
    for index, tp in enumerate(cycle.timepoints):
        progress.update(index / n, f"registering time point {index + 1}/{n} ({tp.hours_post_injection:.1f} h)")
        entry: Dict[str, Any] = {"index": index, "reference": index == reference_index}
        if index == reference_index:
            activity.append(sitk.Cast(tp.spect_bqml, sitk.sitkFloat32))
            entry.update(translation_mm=[0.0, 0.0, 0.0], rotation_deg=[0.0, 0.0, 0.0], warnings=[])
        elif tp.ct_hu is None or reference.ct_hu is None:
            if tp.frame_of_reference_uid != reference.frame_of_reference_uid:
                warnings.append(f"time point {index}: no CT to register; SPECT used in scanner coordinates, "
                                "which assumes the patient did not move between scans")
            resampled = resample_activity_checked(tp.spect_bqml, sitk.Euler3DTransform(), grid)
            activity.append(resampled.image)
            entry.update(translation_mm=[0.0, 0.0, 0.0], rotation_deg=[0.0, 0.0, 0.0],
                         warnings=["not registered: CT missing"])
        else:
            result = register_rigid(reference.ct_hu, tp.ct_hu)
            resampled = resample_activity_checked(tp.spect_bqml, result.transform, grid)
            activity.append(resampled.image)
            entry.update(
                translation_mm=[round(float(v), 3) for v in result.translation_mm],
                rotation_deg=[round(float(v), 3) for v in result.rotation_deg],
                metric_before=float(result.metric_before), metric_after=float(result.metric_after),
                body_overlap_dice=float(result.body_overlap_dice), warnings=list(result.warnings),
                activity_in_fov_fraction=float(getattr(resampled, "fraction_inside", 1.0)),
            )
            if result.implausible:
                warnings.append(f"time point {index} ({tp.hours_post_injection:.1f} h): registration implausible: "
                                f"{result.implausible_reason}; check it before trusting the doses")
            warnings += [f"time point {index}: {w}" for w in result.warnings]
        registrations.append(entry)
    times = np.array([tp.hours_post_injection for tp in cycle.timepoints], dtype=float)
    return RegisteredCycle(cycle, reference_index, times, activity, reference.ct_hu, registrations, warnings)


def run_cycle(options: RunOptions, progress_callback: Optional[ProgressCallback] = None) -> CycleResult:
    """Run one cycle end to end and write every output into ``options.out_dir``."""
    from startnet.outputs import prepare_output_dir, write_outputs

    options.validate()
    staging = prepare_output_dir(options.out_dir)  # fails early on an unwritable folder
    progress = Progress(STAGES, progress_callback)

    progress.stage("load", "reading DICOM and converting SPECT to Bq/mL")
    overrides = Overrides(injection_datetime=options.injection_datetime,
                          injected_activity_mbq=options.injected_activity_mbq,
                          calibration_cps_per_mbq=options.calibration_cps_per_mbq)
    cycle = load_cycle(options.input_dir, overrides=overrides)
    reference_index = choose_reference([tp.hours_post_injection for tp in cycle.timepoints],
                                       options.reference_timepoint)

    progress.stage("register", "registering time points onto the reference")
    registered = register_cycle_to_reference(cycle, reference_index, progress)

    progress.stage("segment", "structures on the reference grid")
    if options.segmentation_path:
        structures = structures_from_file(options.segmentation_path, registered.reference_grid,
                                          labels_path=options.labels_path)
    else:
        structures = automatic_structures(registered.ct_hu, registered.reference_grid)

    progress.stage("kinetics", "fitting time-activity curves")
    analysis = analyse_structures(registered, structures, method=options.method,
                                  recovery_correction=options.recovery_correction, progress=progress)

    progress.stage("results", "assembling results")
    results = build_results(options, registered, structures, analysis, progress)

    trial_status = None
    if options.trial_db:
        from startnet.pipeline_trial import record_cycle_results

        trial_status = record_cycle_results(options.trial_db, options.patient_id, options.cycle,
                                            cycle.injection_datetime.date(), cycle.injected_activity_mbq / 1000.0,
                                            results, results_path=str(Path(options.out_dir) / "results.json"))
        results["trial"] = trial_status

    progress.stage("outputs", "writing results, exports, scene and report")
    result = CycleResult(results, registered, structures, analysis, trial_status=trial_status)
    result.files = write_outputs(result, options, staging, progress)
    progress.done()
    results["provenance"]["timings_s"] = {k: round(v, 3) for k, v in progress.timings_s.items()}
    return result


def build_results(options: RunOptions, registered: RegisteredCycle, structures: Structures,
                  analysis: StructureAnalysis, progress: Progress) -> Dict[str, Any]:
    """The results.json dictionary (keys fixed by the ``startnet run`` contract)."""
    cycle = registered.cycle
    timepoints = []
    for index, tp in enumerate(cycle.timepoints):
        timepoints.append({
            "index": index,
            "hours_post_injection": round(float(tp.hours_post_injection), 4),
            "acquisition_datetime": tp.acquisition_datetime.isoformat(),
            "series_instance_uid": tp.spect_series_uid,
            "ct_series_instance_uid": tp.ct_series_uid,
            "total_activity_mbq": round(float(tp.total_activity_mbq), 3),
            "conversion": tp.conversion,
            "registration": registered.registrations[index],
        })
    warnings = list(cycle.warnings) + list(registered.warnings) + list(structures.warnings) + list(analysis.warnings)
    results: Dict[str, Any] = {
        "schema_version": 1,
        "software": {"name": "startnet", "version": __version__},
        "patient_id": options.patient_id or cycle.patient_id,
        "cycle": options.cycle,
        "method": options.method,
        "nuclide": cycle.nuclide.name,
        "injected_activity_mbq": round(float(cycle.injected_activity_mbq), 3),
        "injection_datetime": cycle.injection_datetime.isoformat(),
        "reference_timepoint": registered.reference_index,
        "timepoints": timepoints,
        "structures": analysis.structure_results,
        "warnings": warnings,
        "provenance": {
            "software_version": __version__,
            "environment": environment_report(),
            "parameters": {
                "method": options.method, "reference_timepoint": registered.reference_index,
                "segmentation": options.segmentation_path or structures.source,
                "labels": options.labels_path, "recovery_correction": options.recovery_correction,
                "calibration_cps_per_mbq_override": options.calibration_cps_per_mbq,
            },
            "input": cycle.to_dict(),
            "structures_source": structures.source,
            "kinetics": analysis.provenance.get("kinetics"),
            "dose": analysis.provenance.get("dose"),
            "bed_parameters": analysis.provenance.get("bed"),
            "uncertainty": analysis.provenance.get("uncertainty"),
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        },
    }
    results.update(kidneys_summary(analysis.structure_results))
    return results
