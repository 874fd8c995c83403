"""One batch row on a worker: skip it when its outputs are current, else run it as ``startnet run`` does.

The row's outputs are written by :func:`startnet.cycle.run.run_cycle` itself (staged, then moved
into OUT_DIR/<name>/ in one step), so they are exactly those of a serial ``startnet run``. The
fingerprint is removed before and written after, and staging folders left by a worker that was
killed are removed first. Errors a user can cause become the row's one-line error; the function
returns an outcome instead of raising, so one bad row never stops the others. Only a dying worker
process escapes (Dask then reschedules the task on another worker).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from startnet.batch.fingerprint import remove_fingerprint, row_fingerprint, stored_fingerprint, write_fingerprint
from startnet.cycle.options import run_options
from startnet.errors import StartNetError

STAGING_PREFIX = ".startnet-staging-"
SUMMARY_KEYS = ("mean_gy", "uncertainty_gy", "tia_mbq_h", "effective_half_life_h", "bed_gy")


@dataclass(frozen=True)
class RowTask:
    name: str
    input_dir: str
    values: Dict[str, Any]
    out_dir: str  # the batch's OUT_DIR; the row writes into OUT_DIR/<name>/
    force: bool = False
    threads: int = 1


@dataclass
class RowOutcome:
    name: str
    status: str  # "done", "skipped" (outputs current) or "failed"
    error: str = ""
    record: Dict[str, Any] = field(default_factory=dict)  # compact results for summary.csv and cohort.html
    seconds: float = 0.0
    peak_rss_mb: Optional[float] = None
    worker_pid: int = 0


def set_threads(threads: int) -> None:
    """numba's and ITK's threads for this worker process (BLAS/OpenMP follow the environment the worker
    started with: they read it once, at import)."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, str(threads))
    threads = max(1, int(threads))
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # numba is a dependency; without it nothing numba-based runs anyway
        pass
    try:
        import SimpleITK

        # the registration metric and resampling; ITK's default is every core of the machine, which
        # oversubscribes the cores when several workers share them
        SimpleITK.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    except ImportError:  # SimpleITK is a dependency; without it no cycle runs anyway
        pass


def peak_rss_mb() -> Optional[float]:
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, StartNetError) else f"internal error: {type(exc).__name__}: {text}"


def remove_stale_staging(row_out: Path) -> None:
    for path in row_out.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


def process_row(task: RowTask) -> RowOutcome:
    """Run (or skip) one row; never raises for a row's own errors."""
    start = time.perf_counter()
    outcome = RowOutcome(task.name, "failed", worker_pid=os.getpid())
    try:
        set_threads(task.threads)
        outcome.status, outcome.record, outcome.error = _process(task)
    except Exception as exc:  # noqa: BLE001 - every row error is reported on its line, the others go on
        outcome.status, outcome.error = "failed", one_line(exc)
    outcome.seconds = time.perf_counter() - start
    outcome.peak_rss_mb = peak_rss_mb()
    return outcome


def _process(task: RowTask):
    row_out = Path(task.out_dir) / task.name
    row_out.mkdir(parents=True, exist_ok=True)
    fingerprint = row_fingerprint(task.input_dir, task.values)
    values = task.values
    trial_db, patient_id, cycle = values.get("trial_db"), values.get("patient_id"), values.get("cycle")
    results_path = row_out / "results.json"
    if (not task.force and stored_fingerprint(row_out) == fingerprint["fingerprint"]
            and results_path.is_file()):
        results = json.loads(results_path.read_text())
        error = ""
        if trial_db:
            from startnet.batch.trial import record_results

            try:
                record_results(trial_db, patient_id, int(cycle), results, str(results_path))
            except StartNetError as exc:
                error = one_line(exc)
        return ("failed" if error else "skipped"), compact_record(results), error

    remove_fingerprint(row_out)
    remove_stale_staging(row_out)
    options = run_options(values, task.input_dir, str(row_out))
    existing = None
    if trial_db:
        from startnet.batch.trial import recorded_cycle

        existing = recorded_cycle(trial_db, patient_id, int(cycle))
        if existing is not None:
            options.trial_db = None  # already recorded: compared below instead of recorded twice
    from startnet.cycle.run import run_cycle

    results = run_cycle(options).results
    write_fingerprint(row_out, fingerprint)
    error = ""
    if existing is not None:
        from startnet.batch.trial import check_same_result

        try:
            check_same_result(existing, results, patient_id, int(cycle))
        except StartNetError as exc:
            error = one_line(exc)
    return ("failed" if error else "done"), compact_record(results), error


def compact_record(results: Dict[str, Any]) -> Dict[str, Any]:
    """What summary.csv and cohort.html need of a row's results.json."""
    structures = {name: {key: values.get(key) for key in SUMMARY_KEYS}
                  for name, values in (results.get("structures") or {}).items()}
    return {"patient_id": results.get("patient_id"), "cycle": results.get("cycle"),
            "injected_activity_mbq": results.get("injected_activity_mbq"),
            "kidneys_mean_gy": results.get("kidneys_mean_gy"), "site": _site(results),
            "structures": structures}


def _site(results: Dict[str, Any]) -> str:
    """The hospital (DICOM Institution Name of the reference SPECT), for the cohort's per-site plots."""
    try:
        timepoints = results["provenance"]["input"]["timepoints"]
        spect_file = timepoints[int(results.get("reference_timepoint") or 0)]["spect_file"]
        import pydicom

        ds = pydicom.dcmread(spect_file, stop_before_pixels=True, specific_tags=["InstitutionName"])
        return str(ds.get("InstitutionName", "") or "").strip() or "unknown"
    except Exception:  # noqa: BLE001 - the site only groups the cohort plots
        return "unknown"
