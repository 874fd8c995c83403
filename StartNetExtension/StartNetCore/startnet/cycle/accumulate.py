"""Several cycles of one patient summed: ``startnet accumulate RUN_DIR [RUN_DIR ...] --out DIR``.

Each RUN_DIR is the output of ``startnet run`` for one cycle (results.json, dose.nrrd, bed.nrrd
and ct_on_dose_grid.nrrd). Every cycle's CT (on its dose grid) is registered rigidly onto the
reference cycle's, its dose and BED maps are resampled onto the reference dose grid and summed
voxel by voxel (full repair between cycles, so BED adds). Structure values (mean dose, BED, kidney
mean) are summed from the cycles' results: a structure missing from a cycle is an error, never a
silently smaller total. Tumour segments are tracked as lesions across the cycles (startnet.lesions).
Written: cumulative_dose.nrrd, cumulative_bed.nrrd, cumulative.json, lesions.json and lesions.csv.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from startnet.cycle.outputs import CT_ON_DOSE_GRID
from startnet.errors import InputError, OutputError

SUMMED_KEYS = ("mean_gy", "bed_gy", "eqd2_gy")


def _load_run(folder: Path) -> Dict[str, Any]:
    files = {name: folder / name for name in ("results.json", "dose.nrrd", "bed.nrrd", CT_ON_DOSE_GRID)}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        raise InputError(f"{folder}: not a complete 'startnet run' output; missing {', '.join(missing)}")
    try:
        results = json.loads(files["results.json"].read_text())
    except ValueError as exc:
        raise InputError(f"{files['results.json']}: not readable JSON ({exc})") from None
    return {"folder": folder, "results": results, "dose": sitk.ReadImage(str(files["dose.nrrd"])),
            "bed": sitk.ReadImage(str(files["bed.nrrd"])), "ct": sitk.ReadImage(str(files[CT_ON_DOSE_GRID]))}


def accumulate_runs(run_dirs: Sequence[str], out_dir: str, reference: int = 0,
                    lesion_map_path: Optional[str] = None) -> Dict[str, Any]:
    """Sum the cycles in ``run_dirs`` onto cycle ``reference``'s grid; returns cumulative.json's content.

    Tumour segments get lesion IDs across the cycles (:mod:`startnet.lesions.runs`; ``lesion_map_path``
    overrides matches): ``lesions`` in cumulative.json, lesions.json and lesions.csv in ``out_dir``.
    """
    from startnet.dosimetry import accumulate_cycles, accumulate_structure_values
    from startnet.dosimetry.bed import sum_cycles
    from startnet.registration import register_rigid

    if len(run_dirs) < 2:
        raise InputError("accumulate: give at least two cycle output folders")
    if not 0 <= reference < len(run_dirs):
        raise InputError(f"--reference {reference}: there are {len(run_dirs)} cycles (0..{len(run_dirs) - 1})")
    runs = [_load_run(Path(d)) for d in run_dirs]
    patients = {str(r["results"].get("patient_id")) for r in runs}
    warnings: List[str] = []
    if len(patients) > 1:
        warnings.append(f"the cycles name different patients: {', '.join(sorted(patients))}")
    fixed = runs[reference]
    doses, beds, registrations, to_cycle = [], [], [], []
    for index, run in enumerate(runs):
        if index == reference:
            transform: sitk.Transform = sitk.Euler3DTransform()
            registrations.append({"cycle_folder": str(run["folder"]), "reference": True})
        else:
            result = register_rigid(fixed["ct"], run["ct"])
            transform = result.transform
            registrations.append({"cycle_folder": str(run["folder"]), "reference": False,
                                  "translation_mm": [round(float(v), 2) for v in result.translation_mm],
                                  "rotation_deg": [round(float(v), 3) for v in result.rotation_deg],
                                  "warnings": list(result.warnings)})
            if result.implausible:
                warnings.append(f"{run['folder']}: registration to the reference cycle implausible "
                                f"({result.implausible_reason}); check the cumulative maps")
        to_cycle.append(transform)
        for key, target in (("dose", doses), ("bed", beds)):
            image = sitk.Resample(run[key], fixed["dose"], transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
            target.append(sitk.GetArrayFromImage(image))
    from startnet.lesions.runs import register_for_runs
    from startnet.lesions.sources import tumour_names

    lesions, lesion_warnings = register_for_runs(runs, to_cycle, lesion_map_path)
    warnings += lesion_warnings
    structures = [r["results"].get("structures") or {} for r in runs]
    names = [n for n in structures[0] if all(n in s for s in structures)]
    skipped = sorted({n for s in structures for n in s} - set(names))
    if skipped:
        warnings.append(f"structures not in every cycle are not summed: {', '.join(skipped)}")
    if lesions is not None:  # a tumour's name may denote another lesion in another cycle: summed per lesion
        by_lesion = tumour_names(names)
        names = [n for n in names if n not in by_lesion]
        if by_lesion:
            warnings.append(f"tumour segments are summed per lesion ('lesions'), not by name: {', '.join(by_lesion)}")
    totals = {key: accumulate_structure_values([{n: s[n][key] for n in names} for s in structures])
              for key in SUMMED_KEYS}
    kidney_values = [r["results"].get("kidneys_mean_gy") for r in runs]
    cumulative = {
        "patient_id": runs[reference]["results"].get("patient_id"),
        "cycles": [{"folder": str(r["folder"]), "cycle": r["results"].get("cycle"),
                    "injected_activity_mbq": r["results"].get("injected_activity_mbq"),
                    "kidneys_mean_gy": r["results"].get("kidneys_mean_gy"),
                    "kidneys_bed_gy": r["results"].get("kidneys_bed_gy")} for r in runs],
        "reference_cycle": reference,
        "structures": {n: {f"cumulative_{k}": round(float(totals[k][n]), 4) for k in SUMMED_KEYS} for n in names},
        "cumulative_kidneys_mean_gy": (round(float(sum_cycles(kidney_values)), 4)
                                       if all(v is not None for v in kidney_values) else None),
        "cumulative_kidneys_bed_gy": (round(float(sum_cycles([r["results"]["kidneys_bed_gy"] for r in runs])), 4)
                                      if all(r["results"].get("kidneys_bed_gy") is not None for r in runs)
                                      else None),
        "registrations": registrations,
        "lesions": lesions,
        "warnings": warnings,
    }
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, arrays in (("cumulative_dose.nrrd", doses), ("cumulative_bed.nrrd", beds)):
            image = sitk.GetImageFromArray(accumulate_cycles(arrays).astype(np.float32))
            image.CopyInformation(fixed["dose"])
            sitk.WriteImage(image, str(out / name), True)
        if lesions is not None:
            from startnet.lesions.table import write_lesion_files

            write_lesion_files(lesions, out)
        (out / "cumulative.json").write_text(json.dumps(cumulative, indent=2))
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return cumulative
