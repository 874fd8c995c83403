"""The ``results.json`` dictionary of one cycle (keys fixed by the ``startnet run`` contract)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from startnet import __version__
from startnet.about import environment_report
from startnet.cycle.analyse import StructureAnalysis, analyse_structures, kidneys_summary
from startnet.cycle.register import RegisteredCycle
from startnet.cycle.structures import Structures
from startnet.dicomio import Discovery
from startnet.progress import Progress


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


def analyse_cycle(options: Any, registered: RegisteredCycle, structures: Structures,
                  progress: Optional[Progress] = None, *, discovery: Optional[Discovery] = None,
                  reference_ct_files: Optional[List[str]] = None) -> CycleResult:
    """Analyse step on a registered cycle and its structures (all in memory) and its results.json.

    ``options``: the run's :class:`startnet.cycle.run.RunOptions` (``input_dir`` is not read).
    Nothing is written: :func:`startnet.cycle.outputs.write_outputs` writes the result.
    """
    if progress is not None:
        progress.stage("quantify", "CT density and partial-volume corrected activities")
    analysis = analyse_structures(registered, structures, method=options.method,
                                  pvc=options.pvc, psf_fwhm_mm=options.psf_fwhm(), progress=progress)
    structures = analysis.structures

    if progress is not None:
        progress.stage("results", "assembling results")
    results = build_results(options, registered, structures, analysis, progress)
    return CycleResult(results, registered, structures, analysis, discovery=discovery,
                       reference_ct_files=reference_ct_files)


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


def build_results(options: Any, registered: RegisteredCycle, structures: Structures,
                  analysis: StructureAnalysis, progress: Progress) -> Dict[str, Any]:
    """The results.json dictionary (keys fixed by the ``startnet run`` contract).

    ``options`` is the run's :class:`startnet.cycle.run.RunOptions` (method, pvc, patient_id, cycle,
    segmentation_path, labels_path, calibration_cps_per_mbq, psf_fwhm()).
    """
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
