"""Everything ``startnet run`` writes into OUT_DIR, written atomically.

Files are first written into a staging folder inside OUT_DIR and moved into place only when all
of them succeeded, so a failed or cancelled run never leaves half-written results that look
like a result. Existing results of an earlier run are replaced file by file at that moment.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pydicom
import SimpleITK as sitk

from startnet.errors import OutputError

LOG = logging.getLogger(__name__)
STAGING_PREFIX = ".startnet-staging-"
CT_ON_DOSE_GRID = "ct_on_dose_grid.nrrd"


def prepare_output_dir(out_dir: str) -> Path:
    """Create OUT_DIR if needed and a staging folder inside it; a clear error when not writable."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def _commit(staging: Path, out: Path, names: List[str]) -> Dict[str, str]:
    files = {}
    for name in names:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(staging / name, target)
        files[name] = str(target)
    shutil.rmtree(staging, ignore_errors=True)
    return files


def series_files(discovery, series_uid: Optional[str]) -> List[str]:
    """Files of one input series, as discovery found them (no second walk of the input folder)."""
    if discovery is None or not series_uid:
        return []
    return sorted(next((s.files for s in discovery.series if s.series_uid == series_uid), []))


def _reference_dataset(ct_files: List[str], cycle, timepoint) -> Dict[str, object]:
    if ct_files:
        ds = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
        return {keyword: getattr(ds, keyword) for keyword in (
            "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
            "StudyTime", "StudyID", "AccessionNumber", "FrameOfReferenceUID", "ReferringPhysicianName")
            if hasattr(ds, keyword)}
    return {"PatientID": cycle.patient_id, "StudyInstanceUID": timepoint.study_uid,
            "FrameOfReferenceUID": timepoint.frame_of_reference_uid}


def write_outputs(result, options, staging: Path, progress=None, timings=None) -> Dict[str, str]:
    """Write results.json, dose/TIA/BED maps, RT Dose, DICOM SEG, scene and report; then commit.

    ``timings`` (a callable returning the per-step wall times in s) is called just before
    results.json is written, so the file carries them as ``provenance.timings_s``.
    """
    out = Path(options.out_dir)
    analysis, registered, structures = result.analysis, result.registered, result.structures
    names: List[str] = []
    try:
        maps = [("dose.nrrd", analysis.dose_gy), ("tia.nrrd", analysis.tia_mbq_h), ("bed.nrrd", analysis.bed_gy)]
        if analysis.ct_hu_on_grid is not None:  # lets later cycles be registered to this one (startnet accumulate)
            maps.append((CT_ON_DOSE_GRID, analysis.ct_hu_on_grid))
        for name, image in maps:
            sitk.WriteImage(image, str(staging / name), True)
            names.append(name)
        _progress(progress, 0.15, "RT Dose and DICOM SEG")
        reference_tp = registered.cycle.timepoints[registered.reference_index]
        ct_files = (list(result.reference_ct_files) if getattr(result, "reference_ct_files", None) is not None
                    else series_files(result.discovery, reference_tp.ct_series_uid))
        from startnet.dosimetry.methods import tissue_heterogeneity_correction
        from startnet.report.rtdose import write_rtdose

        # without a CT the engines use water density everywhere (analyse_structures)
        write_rtdose(analysis.dose_gy, staging / "rtdose.dcm",
                     reference=_reference_dataset(ct_files, registered.cycle, reference_tp),
                     tissue_heterogeneity_correction=tissue_heterogeneity_correction(
                         options.method, registered.ct_hu is not None))
        names.append("rtdose.dcm")
        if ct_files:
            from startnet.report.dicom_seg import write_dicom_seg

            write_dicom_seg(structures.as_images(registered.reference_grid), ct_files, staging / "seg.dcm",
                            colours=structures.colours or None,
                            algorithm_type="AUTOMATIC" if structures.source.startswith("automatic") else "MANUAL")
            names.append("seg.dcm")
        else:
            result.results["warnings"].append("no reference CT: DICOM SEG not written (it references the CT)")
        _progress(progress, 0.35, "Slicer scene")
        if options.write_scene:
            scene_written = _write_scene(result, staging / "scene.mrb")
            if scene_written:
                names.append("scene.mrb")
        _progress(progress, 0.6, "report")
        if options.write_report:
            names += _write_report(result, staging)
        result.results["outputs"] = sorted(names + ["results.json"])
        if timings is not None:
            result.results["provenance"]["timings_s"] = timings()
        (staging / "results.json").write_text(json.dumps(result.results, indent=2, default=_json_default))
        names.append("results.json")
        return _commit(staging, out, names)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _progress(progress, fraction: float, message: str) -> None:
    if progress is not None:
        progress.update(fraction, message)


def _write_scene(result, path: Path) -> bool:
    try:
        from startnet.mrml.cycle_scene import build_cycle_scene
    except ImportError as exc:
        result.results["warnings"].append(f"scene.mrb not written: Slicer MRML is not available ({exc}); "
                                          "install the 'slicer-core' package or run inside Slicer")
        return False
    from startnet.mrml.scene import save_mrb

    scene = build_cycle_scene(result)
    save_mrb(scene, path)
    return True


def _write_report(result, staging: Path) -> List[str]:
    from startnet.cycle.report_input import report_input_from_result
    from startnet.report import write_report

    files = write_report(report_input_from_result(result), staging)
    names = [Path(files.html).name, Path(files.pdf).name]
    folders = {Path(figure).parent.name for figure in files.figures.values()}
    return names + sorted(folder for folder in folders if (staging / folder).is_dir())
