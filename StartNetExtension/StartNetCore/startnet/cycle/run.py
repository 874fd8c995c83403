"""One 177Lu cycle from DICOM to absorbed-dose results: ``run_cycle`` chains the cycle's steps.

    load (cycle.load) -> register (register_cycle_to_reference here; cycle.register for given
    transforms) -> structures (cycle.structures, cycle.segments) -> analyse: kinetics, dose, BED,
    uncertainty (cycle.analyse) and results.json (analyse_cycle, build_results here)
    -> optional trial record (cycle.trial_record) -> outputs (cycle.outputs)

Every step is a plain function taking in-memory inputs (the Slicer modules call the same ones on
the scene's nodes); this module decides the order, the reference grid (the reference time
point's SPECT grid), and records provenance: software version,
parameters, input Series Instance UIDs, calibration and kernel used, per-step timings.
"""

from __future__ import annotations

import datetime as _dt
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from startnet import __version__
from startnet.about import environment_report
from startnet.cycle.analyse import StructureAnalysis, analyse_structures, body_fraction_on_grid, kidneys_summary
from startnet.cycle.load import load_timepoints
from startnet.cycle.run_options import METHODS, RunOptions  # noqa: F401 - RunOptions is imported from here too
from startnet.cycle.structures import Structures, automatic_structures, structures_from_file
from startnet.dicomio import Cycle, Discovery, Overrides
from startnet.errors import InputError
from startnet.progress import Progress, ProgressCallback

LOG = logging.getLogger(__name__)
STAGES = (("load", 30.0), ("register", 15.0), ("segment", 8.0), ("quantify", 8.0), ("kinetics", 10.0),
          ("dose", 6.0), ("results", 3.0), ("outputs", 20.0))


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
    discovery: Optional[Discovery] = None  # the input's series and their files, read once
    # the reference CT's DICOM files (RT Dose and DICOM SEG reference them); else taken from ``discovery``
    reference_ct_files: Optional[List[str]] = None


def choose_reference(times_h, requested: Optional[int]) -> int:
    """Index of the reference time point: the requested one, else the one closest to 24 h."""
    n = len(times_h)
    if requested is not None:
        if not 0 <= requested < n:
            raise InputError(f"--reference-timepoint {requested}: the cycle has {n} time points (0..{n - 1})")
        return int(requested)
    return int(np.argmin(np.abs(np.asarray(times_h) - 24.0)))


def registration_entry(tp_registration) -> Dict[str, Any]:
    """JSON-ready quality record of one time point's registration."""
    entry: Dict[str, Any] = {"index": tp_registration.index, "reference": tp_registration.is_reference,
                             "warnings": list(tp_registration.warnings),
                             "activity_outside_fov_fraction": round(float(
                                 tp_registration.activity.fraction_outside_fov), 5)}
    rigid = tp_registration.rigid
    if rigid is None:
        entry.update(translation_mm=[0.0, 0.0, 0.0], rotation_deg=[0.0, 0.0, 0.0])
    else:
        entry.update(translation_mm=[round(float(v), 3) for v in rigid.translation_mm],
                     rotation_deg=[round(float(v), 3) for v in rigid.rotation_deg],
                     metric_before=float(rigid.metric_before), metric_after=float(rigid.metric_after),
                     body_overlap_dice=float(rigid.body_overlap_dice), implausible=bool(rigid.implausible))
    if tp_registration.deformable is not None:
        entry["bspline_max_displacement_mm"] = float(tp_registration.deformable.max_displacement_mm)
    return entry


def register_cycle_to_reference(cycle: Cycle, reference_index: int, progress: Progress,
                                deformable: bool = False) -> RegisteredCycle:
    """Rigid CT-to-CT registration of each time point; SPECT resampled activity-conserving."""
    from startnet.registration import register_cycle, resample_activity_checked

    timepoints = cycle.timepoints
    reference = timepoints[reference_index]
    times = np.array([tp.hours_post_injection for tp in timepoints], dtype=float)
    warnings: List[str] = []
    if all(tp.ct_hu is not None for tp in timepoints):
        registered = register_cycle([tp.ct_hu for tp in timepoints], [tp.spect_bqml for tp in timepoints],
                                    reference_index, deformable=deformable,
                                    progress=lambda done, total: progress.update(done / total,
                                                                                f"registered {done}/{total}"))
        for tp_registration in registered:
            hours = timepoints[tp_registration.index].hours_post_injection
            if tp_registration.implausible:
                reason = tp_registration.rigid.implausible_reason if tp_registration.rigid else "deformable"
                warnings.append(f"time point {tp_registration.index} ({hours:.1f} h): registration implausible: "
                                f"{reason}; check it before trusting the doses")
            warnings += [f"time point {tp_registration.index}: {w}" for w in tp_registration.warnings]
        activity = [r.spect_on_reference for r in registered]
        entries = [registration_entry(r) for r in registered]
    else:
        warnings.append("a time point has no CT: SPECTs are used in scanner coordinates without registration, "
                        "which assumes the patient lay identically at every scan")
        activity, entries = [], []
        for index, tp in enumerate(timepoints):
            resampled = resample_activity_checked(tp.spect_bqml, sitk.Euler3DTransform(), reference.spect_bqml)
            activity.append(resampled.image)
            entries.append({"index": index, "reference": index == reference_index, "warnings": ["not registered"],
                            "translation_mm": [0.0, 0.0, 0.0], "rotation_deg": [0.0, 0.0, 0.0]})
    return RegisteredCycle(cycle, reference_index, times, activity, reference.ct_hu, entries, warnings)


def run_cycle(options: RunOptions, progress_callback: Optional[ProgressCallback] = None) -> CycleResult:
    """Run one cycle end to end and write every output into ``options.out_dir``."""
    from startnet.cycle.outputs import prepare_output_dir

    options.validate()
    staging = prepare_output_dir(options.out_dir)  # fails early on an unwritable folder
    try:
        return _run_steps(options, staging, Progress(STAGES, progress_callback))
    finally:  # outputs were committed (the staging folder is gone) or nothing was: no half-written results
        shutil.rmtree(staging, ignore_errors=True)


def _run_steps(options: RunOptions, staging: Path, progress: Progress) -> CycleResult:
    from startnet.cycle.outputs import write_outputs

    progress.stage("load", "reading DICOM and converting SPECT to Bq/mL")
    overrides = Overrides(injection_datetime=options.injection_datetime,
                          injected_activity_mbq=options.injected_activity_mbq,
                          calibration_cps_per_mbq=options.calibration_cps_per_mbq,
                          dead_time_s=options.dead_time_s, count_rate_kcps=options.count_rate_kcps)
    if options.calibration_path:
        from startnet.calibration.use import apply_to_run

        cycle, discovery = apply_to_run(options, overrides)
    else:
        cycle, discovery = load_timepoints(options.input_dir, overrides)
    from startnet.cycle.marrow import load_blood_samples

    blood_samples = load_blood_samples(options, cycle)
    reference_index = choose_reference([tp.hours_post_injection for tp in cycle.timepoints],
                                       options.reference_timepoint)

    progress.stage("register", "registering time points onto the reference")
    registered = register_cycle_to_reference(cycle, reference_index, progress)

    progress.stage("segment", "structures on the reference grid")
    if options.segmentation_path:
        ct_series = {tp.ct_series_uid: f"time point {i} ({tp.hours_post_injection:.1f} h)"
                     for i, tp in enumerate(cycle.timepoints) if tp.ct_series_uid}
        structures = structures_from_file(options.segmentation_path, registered.reference_grid,
                                          labels_path=options.labels_path, ct_hu=registered.ct_hu,
                                          ct_series=ct_series,
                                          reference_ct_series_uid=cycle.timepoints[reference_index].ct_series_uid)
    else:
        structures = automatic_structures(registered.ct_hu, registered.reference_grid)
    from startnet.cycle.marrow_voi import add_marrow_vois, image_marrow_results

    structures = add_marrow_vois(structures, options.marrow_voi, registered.ct_hu, registered.reference_grid)

    result = analyse_cycle(options, registered, structures, progress, discovery=discovery)
    results = result.results
    if blood_samples is not None:
        from startnet.cycle.marrow import marrow_results

        results["marrow"] = marrow_results(options, blood_samples, registered)
        results["warnings"] += [f"marrow: {w}" for w in results["marrow"]["warnings"]]
    voi_source = "CT (startnet.segmentation.vertebrae)" if any(
        n.startswith("marrow VOI from the CT") for n in structures.log) else "segmentation"
    image_based = image_marrow_results(options, result, voi_source)
    if image_based is not None:
        results.setdefault("marrow", {})["image_based"] = image_based
        results["warnings"] += [f"marrow (image-based): {w}" for w in image_based["warnings"]]

    if options.trial_db or options.lesion_map_path:  # lesion IDs matched to the patient's earlier cycles
        from startnet.lesions.update import lesions_for_run

        results["lesions"], lesion_warnings = lesions_for_run(options, result)
        results["warnings"] += [f"lesions: {w}" for w in lesion_warnings]

    trial_status = None
    if options.trial_db:
        from startnet.cycle.trial_record import record_cycle_results

        # an absolute path: a later cycle run from another working folder finds this run again
        results_path = str(Path(options.out_dir).resolve() / "results.json")
        trial_status, trial_warnings = record_cycle_results(
            options.trial_db, options.patient_id, options.cycle, cycle.injection_datetime.date(),
            cycle.injected_activity_mbq / 1000.0, results, results_path=results_path)
        results["trial"] = trial_status
        results["warnings"] += [f"trial record: {w}" for w in trial_warnings]

    progress.stage("outputs", "writing results, exports, scene and report")
    result.trial_status = trial_status
    # results.json records every step's time; "outputs" up to the moment results.json is written
    result.files = write_outputs(result, options, staging, progress,
                                 timings=lambda: {k: round(v, 3) for k, v in progress.timings_so_far_s().items()})
    progress.done()
    return result


def analyse_cycle(options: RunOptions, registered: RegisteredCycle, structures: Structures,
                  progress: Optional[Progress] = None, *, discovery: Optional[Discovery] = None,
                  reference_ct_files: Optional[List[str]] = None) -> CycleResult:
    """Analyse step on a registered cycle and its structures (all in memory) and its results.json.

    ``options.input_dir`` is not read. Nothing is written: :func:`startnet.cycle.outputs.write_outputs`
    writes the result (RT Dose and DICOM SEG reference ``reference_ct_files``, else the discovery's).
    """
    if progress is not None:
        progress.stage("quantify", "CT density and partial-volume corrected activities")
    # the body's share of each SPECT voxel (from the whole CT): computed once for the PSF check and the GTM
    body = None if registered.ct_hu is None else body_fraction_on_grid(registered.ct_hu, registered.reference_grid)
    psf_mm, psf_check, psf_warnings = _checked_psf(options, registered, structures, body)
    analysis = analyse_structures(registered, structures, method=options.method,
                                  pvc=options.pvc, psf_fwhm_mm=psf_mm, progress=progress, body_fraction=body,
                                  **_calibration_inputs(options, registered))
    analysis.warnings[:0] = psf_warnings
    analysis.provenance["psf_check"] = psf_check
    structures = analysis.structures

    if progress is not None:
        progress.stage("results", "assembling results")
    results = build_results(options, registered, structures, analysis, progress)
    return CycleResult(results, registered, structures, analysis, discovery=discovery,
                       reference_ct_files=reference_ct_files)


def _checked_psf(options: RunOptions, registered: RegisteredCycle, structures: Structures,
                 body: Optional[np.ndarray]):
    """(PSF FWHM for the correction, psf_check record, warnings): the assumed PSF checked on the patient's SPECT.

    ``body``: the body's share of each reference-grid voxel (``body_fraction_on_grid``), None without a CT.
    """
    from startnet.calibration.patient_psf import check_patient_psf

    assumed = options.psf_fwhm()
    if options.psf_fwhm_mm:
        source = "--psf-fwhm-mm"
    elif getattr(options.applied_calibration, "psf_fwhm_mm", None):
        source = f"calibration {options.applied_calibration.path}"
    else:
        source = "default, not calibrated for this camera"
    # the reference time point alone: it is on its own SPECT grid. The other time points were resampled onto it
    # (linear interpolation after registration), which blurs them by up to a voxel: on 7 mm voxels their sum read
    # 13.8 mm for an 11 mm camera. The camera's PSF is what is checked, so the image that was never resampled.
    grid = registered.reference_grid
    images = [sitk.GetArrayViewFromImage(registered.activity_bqml[registered.reference_index])]
    used, record, warnings = check_patient_psf(images, structures.fraction_maps(), tuple(reversed(grid.GetSpacing())),
                                               assumed, source, body)
    record["timepoint_index"] = int(registered.reference_index)
    record["image"] = "reference time point on its own SPECT grid (not resampled)"
    return used, record, warnings


def _calibration_inputs(options: RunOptions, registered: RegisteredCycle) -> Dict[str, Any]:
    """What a camera calibration gives the analysis: recovery curve, CF and PSF relative SDs (none: defaults)."""
    if options.applied_calibration is None:
        return {}
    from startnet.calibration.use import analysis_inputs

    return analysis_inputs(options, registered.cycle)


def radiopharmaceutical_name(spect_file: str) -> Optional[str]:
    """Radiopharmaceutical (0018,0031) of the SPECT's Radiopharmaceutical Information Sequence, if given."""
    import pydicom

    try:
        ds = pydicom.dcmread(spect_file, stop_before_pixels=True,
                             specific_tags=["RadiopharmaceuticalInformationSequence"])
        name = str(ds.RadiopharmaceuticalInformationSequence[0].get("Radiopharmaceutical", "") or "").strip()
    except (OSError, AttributeError, IndexError, pydicom.errors.InvalidDicomError):
        return None
    return name or None


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
        "radiopharmaceutical": radiopharmaceutical_name(cycle.timepoints[registered.reference_index].spect_file),
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
                "labels": options.labels_path, "partial_volume_correction": options.pvc,
                "psf_fwhm_mm": options.psf_fwhm(),
                "calibration_cps_per_mbq_override": options.calibration_cps_per_mbq,
                "dead_time_s": options.dead_time_s,
                "count_rate_kcps_override": (list(options.count_rate_kcps)
                                             if options.count_rate_kcps is not None else None),
                "calibration": (options.applied_calibration.provenance()
                                if options.applied_calibration is not None else None),
            },
            "input": cycle.to_dict(),
            "structures_source": structures.source,
            "segmentation_notes": list(structures.log),
            "kinetics": analysis.provenance.get("kinetics"),
            "dose": analysis.provenance.get("dose"),
            "bed_parameters": analysis.provenance.get("bed"),
            "uncertainty": analysis.provenance.get("uncertainty"),
            "psf_check": analysis.provenance.get("psf_check"),
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        },
    }
    results.update(kidneys_summary(analysis.structure_results))
    return results
