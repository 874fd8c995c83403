"""Imports every startnet module under a real Python 3.9 and runs small computations (Slicer 5.8).

Run with .venv39's interpreter (``tools/py39_env.sh`` builds it: Python 3.9, numpy 1.26,
pydicom 2.4 as in Slicer 5.8, and the other dependencies at their last 3.9 releases)::

    .venv39/bin/python tools/py39_import_check.py

1. Imports every module of ``startnet`` found on disk, except:
   - ``startnet.mrml.*`` when slicer-core cannot be imported (no slicer-core wheel exists for
     Python 3.9 on PyPI: ``pip download slicer-core --python-version 3.9 --only-binary=:all:``
     finds none); inside Slicer these run on Slicer's own ``slicer`` module.
   - ``startnet.__main__`` (it runs the CLI when imported): run as ``python -m startnet --version``.
   - ``startnet.trial.migrations.env`` (runs only inside Alembic): run by ``TrialStore.initialise``.
2. Runs computations whose results are compared with closed forms or ground truth: structure and
   voxel (numba) TAC fits, the 4.8 mm kernel's electron energy, a trial database on SQLite
   (Alembic migrations, enrol, cycles, status), and a noise-free phantom written as DICOM and
   loaded back by ``startnet.dicomio`` (total activity vs truth), then a dose map exported as
   RT Dose and a kidney mask as DICOM SEG, each read back (pydicom; SEG also by
   ``startnet.segmentation.io.load_segmentation``). Last, ``startnet demo`` runs the whole cycle
   pipeline (registration, segmentation, kinetics, dose, report, trial record; about 30 s) and
   its kidney dose is compared with the phantom truth within twice its reported uncertainty.

Prints one line per failure (module or check, exception) and exits 1 on any failure.
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO / "StartNetExtension" / "StartNetCore" / "startnet"
NOT_IMPORTED = {
    "startnet.__main__": "runs the CLI on import; checked as 'python -m startnet --version'",
    "startnet.trial.migrations.env": "runs inside Alembic only; checked by TrialStore.initialise",
}


def module_names() -> List[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _slicer_available() -> bool:
    try:
        importlib.import_module("slicer")
    except Exception:  # noqa: BLE001 - any failure means MRML modules cannot run here
        return False
    return True


def import_all() -> Tuple[int, List[str], List[str]]:
    """(number imported, failures, skipped notes)."""
    failures: List[str] = []
    skipped: List[str] = []
    with_mrml = _slicer_available()
    count = 0
    for name in module_names():
        if name in NOT_IMPORTED:
            skipped.append(f"{name}: {NOT_IMPORTED[name]}")
            continue
        if name.startswith("startnet.mrml") and not with_mrml:
            skipped.append(f"{name}: slicer-core has no Python 3.9 wheel")
            continue
        try:
            importlib.import_module(name)
            count += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the walk
            failures.append(f"import {name}: {type(exc).__name__}: {exc} ({_where(exc)})")
    return count, failures, skipped


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if "startnet" in f.filename] or frames
    return f"{own[-1].filename}:{own[-1].lineno}" if own else "?"


def _close(value: float, expected: float, rel: float, what: str) -> None:
    if not (math.isfinite(value) and abs(value - expected) <= rel * abs(expected)):
        raise AssertionError(f"{what}: got {value!r}, expected {expected!r} (relative tolerance {rel:g})")


# --- runtime checks: each returns a short description of what it verified -------------------
A0_MBQ = 100.0
K_PER_H = math.log(2.0) / 50.0
TIMES_H = (4.0, 24.0, 96.0, 168.0)


def check_cli_main() -> str:
    import startnet

    out = subprocess.run([sys.executable, "-m", "startnet", "--version"], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0 or startnet.__version__ not in out.stdout + out.stderr:
        raise AssertionError(f"exit {out.returncode}, output {(out.stdout + out.stderr).strip()!r}")
    return f"python -m startnet --version -> {startnet.__version__}"


def check_fit_tac() -> str:
    import numpy as np

    from startnet.kinetics import fit_tac

    t = np.array(TIMES_H)
    fit = fit_tac(t, A0_MBQ * np.exp(-K_PER_H * t), structure="kidney_left")
    if fit.model != "mono":
        raise AssertionError(f"model {fit.model!r}, expected 'mono' for noise-free mono-exponential data")
    _close(fit.tia_mbq_h, A0_MBQ / K_PER_H, 1e-6, "TIA (MBq.h)")
    _close(fit.effective_half_life_h, 50.0, 1e-6, "effective half-life (h)")
    return f"fit_tac mono: TIA {fit.tia_mbq_h:.4f} MBq.h = A0/k, T_eff 50 h"


def check_fit_voxels() -> str:
    import numpy as np

    from startnet.kinetics import fit_voxels

    t = np.array(TIMES_H)
    decay = A0_MBQ * np.exp(-K_PER_H * t)
    act = np.empty((4, 3, 4, 5), dtype=np.float32)
    act[:] = decay[:, None, None, None]
    uptake = np.array([40.0, decay[1], decay[2], decay[3]])  # peak at the second point
    act[:, 2, 3, 4] = uptake
    mask = np.ones((3, 4, 5), dtype=bool)
    mask[0, 0, 0] = False
    result = fit_voxels(t, act, mask)
    _close(float(result.tia_mbq_h[1, 1, 1]), A0_MBQ / K_PER_H, 1e-4, "mono voxel TIA (MBq.h)")
    expected_uptake = (0.5 * t[0] * uptake[0] + 0.5 * (t[1] - t[0]) * (uptake[0] + uptake[1])
                       + uptake[1] / K_PER_H)
    _close(float(result.tia_mbq_h[2, 3, 4]), expected_uptake, 1e-4, "uptake voxel TIA (MBq.h)")
    codes = (int(result.model_map[0, 0, 0]), int(result.model_map[1, 1, 1]), int(result.model_map[2, 3, 4]))
    if codes != (0, 1, 2) or float(result.tia_mbq_h[0, 0, 0]) != 0.0:
        raise AssertionError(f"model codes (outside, mono, uptake) = {codes}, expected (0, 1, 2)")
    return f"fit_voxels (numba): mono {result.tia_mbq_h[1, 1, 1]:.2f}, uptake {result.tia_mbq_h[2, 3, 4]:.2f} MBq.h"


def check_kernel() -> str:
    import numpy as np

    from startnet.dosimetry.kernels import get_kernel
    from startnet.physics.lu177 import LU177

    kernel = get_kernel((4.8, 4.8, 4.8))
    electron = kernel.electron_gy_per_mbq_h
    if any(n % 2 == 0 for n in electron.shape) or not np.allclose(electron, electron[::-1, ::-1, ::-1]):
        raise AssertionError(f"electron kernel shape {electron.shape} not odd-sized and centred")
    mass_kg = 4.8 ** 3 * 1e-6  # water, 1 g/ml
    energy_j = float(np.sum(electron, dtype=np.float64)) * mass_kg
    _close(energy_j, LU177.electron_energy_j_per_mbq_h, 1e-3, "electron kernel energy (J per MBq.h)")
    photon_fraction = kernel.energy_balance.photon_absorbed_fraction
    if not 0.5 < photon_fraction < 1.0:
        raise AssertionError(f"photon absorbed fraction {photon_fraction:.3f} outside (0.5, 1)")
    return (f"get_kernel 4.8 mm: sum S_e x m = {energy_j:.6e} J/(MBq.h) = Delta_e "
            f"(ICRP 107), photon fraction {photon_fraction:.3f}")


def check_trial(tmp: Path) -> str:
    from startnet.trial.identity import User
    from startnet.trial.records import CycleEntry
    from startnet.trial.store import TrialStore
    from startnet.trial.summary import status

    url = f"sqlite:///{tmp / 'trial.sqlite'}"
    store = TrialStore.initialise(url, User("py39-check", None))
    enrolled = dt.date(2025, 1, 2)
    store.enroll("SN-039", "Sahlgrenska", 2, enrolled)
    store.add_cycle("SN-039", CycleEntry(1, dt.date(2025, 1, 13), 7.4, 6.0))
    store.add_cycle("SN-039", CycleEntry(2, dt.date(2025, 3, 24), 7.4, 7.5))
    store.close()
    reopened = TrialStore.open(url)
    info = status(reopened, "SN-039")
    reopened.close()
    _close(info["cumulative_kidney_gy"], 13.5, 1e-9, "cumulative kidney dose (Gy)")
    _close(info["remaining_kidney_gy"], 30.0 - 13.5, 1e-9, "remaining kidney dose (Gy)")
    if [c["cycle"] for c in info["cycles"]] != [1, 2] or info["next_cycle"]["cycle"] != 3:
        raise AssertionError(f"cycles {info['cycles']}, next {info['next_cycle']}")
    return "TrialStore on SQLite (Alembic head): 2 cycles, cumulative 13.5 Gy, remaining 16.5 Gy"


def check_dicomio(tmp: Path, shared: Dict[str, object]) -> str:
    from startnet.dicomio import load_cycle
    from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

    phantom = build_phantom(PhantomConfig(preset="small", seed=1, noise=False, blur=False, motion=False,
                                          timepoints_h=(24.0,)))
    files = write_phantom_dicom(phantom, tmp / "phantom")
    shared.update(phantom=phantom, files=files)
    cycle = load_cycle(str(files.dicom_dir))
    point = cycle.timepoints[0]
    shared["spect"] = point.spect_bqml
    _close(point.hours_post_injection, 24.0, 1e-9, "hours after injection")
    truth_mbq = float(phantom.truth["timepoints"][0]["total_activity_mbq"])
    _close(point.total_activity_mbq, truth_mbq, 1e-3, "SPECT total activity (MBq) vs phantom truth")
    return f"phantom DICOM -> load_cycle: {point.total_activity_mbq:.3f} MBq vs truth {truth_mbq:.3f} MBq"


def check_rtdose(tmp: Path, shared: Dict[str, object]) -> str:
    import numpy as np
    import pydicom
    import SimpleITK as sitk

    from startnet.report.rtdose import write_rtdose

    spect = shared["spect"]
    dose = sitk.Cast(spect, sitk.sitkFloat32) * (2.5 / float(np.max(sitk.GetArrayViewFromImage(spect))))
    reference = pydicom.dcmread(str(shared["files"].timepoints[0].ct_files[0]))
    write_rtdose(dose, tmp / "rtdose.dcm", reference=reference)
    back = pydicom.dcmread(str(tmp / "rtdose.dcm"))
    stored = back.pixel_array.astype(np.float64) * float(back.DoseGridScaling)
    expected = sitk.GetArrayFromImage(dose).astype(np.float64)
    origin_error_mm = float(np.max(np.abs(np.array(back.ImagePositionPatient, dtype=float) - dose.GetOrigin())))
    if stored.shape != expected.shape or origin_error_mm > 1e-3:
        raise AssertionError(f"RT Dose geometry: shape {stored.shape} vs {expected.shape}, "
                             f"origin off by {origin_error_mm:.3g} mm")
    error_gy = float(np.max(np.abs(stored - expected)))
    if error_gy > float(back.DoseGridScaling):
        raise AssertionError(f"RT Dose values differ by up to {error_gy:.3g} Gy (scaling {back.DoseGridScaling})")
    return f"write_rtdose -> pydicom: max error {error_gy:.2g} Gy of 2.5 Gy"


def check_dicom_seg(tmp: Path, shared: Dict[str, object]) -> str:
    import numpy as np
    import pydicom
    import SimpleITK as sitk

    from startnet.report.dicom_seg import write_dicom_seg
    from startnet.segmentation.io import load_segmentation

    phantom = shared["phantom"]
    label = next(k for k, v in phantom.label_names.items() if v == "kidney_left")
    mask = sitk.Equal(phantom.labels, label)
    voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    write_dicom_seg({"kidney_left": mask}, [str(p) for p in shared["files"].timepoints[0].ct_files],
                    tmp / "seg.dcm")
    seg = pydicom.dcmread(str(tmp / "seg.dcm"))
    seg_voxels = int(np.count_nonzero(seg.pixel_array))
    if seg_voxels != voxels or len(seg.SegmentSequence) != 1:
        raise AssertionError(f"DICOM SEG holds {seg_voxels} voxels in {len(seg.SegmentSequence)} segments; "
                             f"the mask has {voxels} in 1")
    loaded = load_segmentation(tmp / "seg.dcm", phantom.labels)
    read_back = loaded.masks.get("kidney_left")
    expected = sitk.GetArrayViewFromImage(mask) != 0
    if read_back is None or not np.array_equal(read_back, expected):
        raise AssertionError(f"load_segmentation of the SEG: segments {loaded.names}, "
                             f"{0 if read_back is None else int(np.count_nonzero(read_back))} voxels vs {voxels}")
    return f"write_dicom_seg -> pydicom and load_segmentation: kidney_left {seg_voxels} voxels = mask"


def check_pipeline(tmp: Path) -> str:
    """``startnet demo`` (phantom -> DICOM -> startnet run -> report, trial record) on Python 3.9."""
    import json

    from startnet.trial.store import TrialStore
    from startnet.trial.summary import status

    out = tmp / "demo"
    run = subprocess.run([sys.executable, "-m", "startnet", "demo", "--out", str(out), "--quiet"],
                         capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise AssertionError(f"startnet demo exit {run.returncode}: {(run.stderr or run.stdout).strip()[-400:]}")
    results = json.loads((out / "results" / "results.json").read_text(encoding="utf-8"))
    truth = json.loads((out / "phantom" / "truth.json").read_text(encoding="utf-8"))["structures"]
    kidneys = ("kidney_left", "kidney_right")
    truth_gy = sum(truth[k]["mean_dose_gy"] * truth[k]["mass_g"] for k in kidneys) / sum(
        truth[k]["mass_g"] for k in kidneys)
    measured_gy = float(results["kidneys_mean_gy"])
    allowed_gy = 2.0 * float(results["kidneys_uncertainty_pct"]) / 100.0 * measured_gy
    if not abs(measured_gy - truth_gy) <= allowed_gy:
        raise AssertionError(f"kidney dose {measured_gy:.3f} Gy vs truth {truth_gy:.3f} Gy: more than twice the "
                             f"reported standard uncertainty ({allowed_gy / 2:.3f} Gy)")
    missing = [n for n in ("results.json", "dose.nrrd", "rtdose.dcm", "seg.dcm", "report.html", "report.pdf")
               if not (out / "results" / n).is_file() or (out / "results" / n).stat().st_size == 0]
    if missing:
        raise AssertionError(f"startnet demo wrote no {', '.join(missing)}")
    store = TrialStore.open(f"sqlite:///{out / 'trial.db'}")
    try:
        recorded_gy = float(status(store, "SN-DEMO-001")["cumulative_kidney_gy"])
    finally:
        store.close()
    _close(recorded_gy, measured_gy, 1e-6, "kidney dose recorded in the trial database (Gy)")
    return (f"startnet demo: kidneys {measured_gy:.3f} Gy vs truth {truth_gy:.3f} Gy "
            f"({100 * (measured_gy / truth_gy - 1):+.1f} %, allowed +-{100 * allowed_gy / measured_gy:.1f} %), "
            "recorded in the trial database")


def run_checks(tmp: Path) -> List[str]:
    checks: List[Tuple[str, Callable[[], str]]] = [
        ("cli", check_cli_main), ("fit_tac", check_fit_tac), ("fit_voxels", check_fit_voxels),
        ("kernel", check_kernel), ("trial", lambda: check_trial(tmp)),
        ("dicomio", lambda: check_dicomio(tmp, shared)), ("rtdose", lambda: check_rtdose(tmp, shared)),
        ("dicom_seg", lambda: check_dicom_seg(tmp, shared)), ("pipeline", lambda: check_pipeline(tmp)),
    ]
    shared: Dict[str, object] = {}
    failures = []
    for name, check in checks:
        start = time.perf_counter()
        if name in ("rtdose", "dicom_seg") and "files" not in shared:
            failures.append(f"check {name}: not run, the phantom DICOM of check dicomio is missing")
            continue
        try:
            what = check()
        except Exception as exc:  # noqa: BLE001 - reported as one line, the other checks still run
            failures.append(f"check {name}: {type(exc).__name__}: {exc} ({_where(exc)})")
            continue
        print(f"  ok  {what}  [{time.perf_counter() - start:.1f} s]")
    return failures


def main() -> int:
    if sys.version_info[:2] != (3, 9):
        print(f"py39 import check must run on Python 3.9, not {sys.version.split()[0]} ({sys.executable})")
        return 1
    os.environ.setdefault("MPLBACKEND", "Agg")
    start = time.perf_counter()
    import startnet

    if Path(startnet.__file__).resolve().parent != PACKAGE_DIR:
        print(f"startnet imported from {startnet.__file__}, not from {PACKAGE_DIR}: reinstall .venv39")
        return 1
    count, failures, skipped = import_all()
    print(f"python {sys.version.split()[0]}: imported {count} startnet modules "
          f"({len(failures)} failed, {len(skipped)} not imported) in {time.perf_counter() - start:.1f} s")
    mrml = sum(1 for s in skipped if s.startswith("startnet.mrml"))
    for note in [s for s in skipped if not s.startswith("startnet.mrml")]:
        print(f"  not imported: {note}")
    if mrml:
        print(f"  not imported: {mrml} startnet.mrml modules (slicer-core has no Python 3.9 wheel)")
    with tempfile.TemporaryDirectory(prefix="startnet-py39-") as tmp:
        os.environ["STARTNET_CACHE_DIR"] = str(Path(tmp) / "cache")
        failures += run_checks(Path(tmp))
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"py39 import check: {len(failures)} failures in {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
