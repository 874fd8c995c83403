"""``startnet batch`` on a real Dask LocalCluster with small phantom cycles.

A manifest of two good rows (one with the phantom's segmentation, one with automatic structures
and no partial-volume correction) and one broken row (a folder without DICOM files): the broken
row is reported in summary.csv and the exit status is 1, the good rows' results equal serial
``startnet run`` results of the same rows, a second invocation skips every finished row, and a
worker process killed while it runs a row still leaves every good row done (Dask reschedules the
task on the restarted worker) with no staging folders left behind.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import SimpleITK as sitk

from startnet.batch.summary import SUMMARY_COLUMNS
from startnet.cycle.options import run_options
from startnet.cycle.run import STAGES, run_cycle
from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

pytestmark = pytest.mark.slow
GOOD = ("seg", "auto")
ENV = dict(os.environ, PYTHONUNBUFFERED="1")



def _same_structures(got, expected, path="structures"):
    """Equal, numbers to float32 rounding: two serial ``startnet run``s of one cycle differ in the last bits of
    the multi-threaded registration sums, which can move a rounded value by one unit in its last place
    (results.json rounds to 3-4 decimals)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), path
        for key in expected:
            _same_structures(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), path
        for index, (g, e) in enumerate(zip(got, expected)):
            _same_structures(g, e, f"{path}[{index}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-3), path  # one unit at 3 decimals
    else:
        assert got == expected, path

def startnet(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "startnet", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """The phantom's DICOM, a broken folder, the manifest, and serial runs of the good rows."""
    root = tmp_path_factory.mktemp("batch")
    phantom = build_phantom(PhantomConfig(preset="small", seed=41))
    files = write_phantom_dicom(phantom, root / "cycle")
    broken = root / "broken"
    broken.mkdir()
    (broken / "IM0001.dcm").write_bytes(b"not a DICOM file")
    manifest = root / "manifest.csv"
    manifest.write_text("input_dir,name,segmentation,reference_timepoint,pvc\n"
                        f"cycle/DICOM,seg,cycle/{files.segmentation_nrrd.name},{phantom.reference_index},\n"
                        f"cycle/DICOM,auto,,{phantom.reference_index},none\n"
                        "broken,broken,,,\n")
    rows = {"seg": {"segmentation": str(files.segmentation_nrrd), "reference_timepoint": phantom.reference_index},
            "auto": {"reference_timepoint": phantom.reference_index, "pvc": "none"}}
    serial = {}
    for name, values in rows.items():
        options = run_options(values, str(files.dicom_dir), str(root / "serial" / name))
        run_cycle(options)
        serial[name] = root / "serial" / name
    return root, manifest, serial


@pytest.fixture(scope="module")
def first_run(cohort):
    root, manifest, _ = cohort
    out = root / "out"
    result = startnet("batch", manifest, "--out", out, "--workers", "2", "--threads-per-worker", "1")
    return out, result


def summary(out: Path):
    with open(out / "summary.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def dose(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_broken_row_reported_and_others_finish(first_run):
    out, result = first_run
    assert result.returncode == 1, result.stderr
    columns, lines = summary(out)
    assert tuple(columns) == SUMMARY_COLUMNS
    broken = [line for line in lines if line["name"] == "broken"]
    assert len(broken) == 1 and broken[0]["status"] == "failed"
    assert "no DICOM files found" in broken[0]["error"] and "\n" not in broken[0]["error"]
    for name in GOOD:
        statuses = {line["status"] for line in lines if line["name"] == name}
        assert statuses == {"done"}, (name, statuses)
    assert "1 failed" in result.stdout and "failed: broken:" in result.stderr
    assert "[batch] 3/3 cycles" in result.stderr  # progress: done / total
    cohort_html = (out / "cohort.html").read_text()
    assert cohort_html.count("data:image/png;base64,") == 3 and "broken" in cohort_html


def test_rows_equal_serial_runs(first_run, cohort):
    out, _ = first_run
    _, _, serial = cohort
    _, lines = summary(out)
    for name in GOOD:
        batch_results = json.loads((out / name / "results.json").read_text())
        serial_results = json.loads((serial[name] / "results.json").read_text())
        _same_structures(batch_results["structures"], serial_results["structures"], name)
        assert batch_results["kidneys_mean_gy"] == serial_results["kidneys_mean_gy"]
        # the voxel maps agree to float32 rounding (two serial runs of startnet run differ by as much:
        # multi-threaded ITK resampling sums in varying order)
        batch_dose, serial_dose = dose(out / name / "dose.nrrd"), dose(serial[name] / "dose.nrrd")
        assert np.abs(batch_dose - serial_dose).max() <= 1e-6 * serial_dose.max()
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(
            [p.name for p in serial[name].iterdir()] + ["batch_fingerprint.json"])
        kidney = next(line for line in lines if line["name"] == name and line["structure"] == "kidney_left")
        assert float(kidney["mean_gy"]) == batch_results["structures"]["kidney_left"]["mean_gy"]
        gbq = batch_results["injected_activity_mbq"] / 1000.0
        assert float(kidney["gy_per_gbq"]) == pytest.approx(float(kidney["mean_gy"]) / gbq, rel=1e-5)
        # per-step timings are in the file on disk (they used to be added after it was written)
        timings = batch_results["provenance"]["timings_s"]
        assert set(timings) == {stage for stage, _ in STAGES} and timings["outputs"] > 0


def test_second_invocation_skips_finished_rows(first_run, cohort):
    out, _ = first_run
    _, manifest, _ = cohort
    before = {name: (out / name / "results.json").stat().st_mtime_ns for name in GOOD}
    again = startnet("batch", manifest, "--out", out, "--workers", "1")
    assert again.returncode == 1, again.stderr  # the broken row is still broken
    _, lines = summary(out)
    assert {line["status"] for line in lines if line["name"] in GOOD} == {"skipped"}
    assert {name: (out / name / "results.json").stat().st_mtime_ns for name in GOOD} == before
    assert "0 computed, 2 skipped" in again.stdout


def _worker_processes(batch_process: psutil.Process):
    """The Dask worker processes under the batch command: spawned ones (Windows), or the children of the
    forkserver, which carry its command line (Linux, macOS)."""
    workers = []
    for process in batch_process.children(recursive=True):
        command = " ".join(process.cmdline())
        if "resource_tracker" in command:
            continue
        forked = "forkserver" in command and "forkserver" in " ".join(process.parent().cmdline())
        if "spawn_main" in command or forked:
            workers.append(process)
    return workers


def test_killed_worker_task_is_rescheduled(cohort):
    root, manifest, serial = cohort
    out = root / "out-killed"
    process = subprocess.Popen([sys.executable, "-m", "startnet", "batch", str(manifest), "--out", str(out),
                                "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=ENV)
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and time.monotonic() < deadline and process.poll() is None:
        staging = list((out / "seg").glob(".startnet-staging-*")) if (out / "seg").is_dir() else []
        workers = _worker_processes(psutil.Process(process.pid))
        if staging and len(workers) == 1:  # the only worker is running row "seg": kill it mid-task
            time.sleep(1.0)
            killed = workers[0].pid
            workers[0].kill()
        time.sleep(0.2)
    stdout, stderr = process.communicate(timeout=900)
    assert killed is not None, f"never saw row 'seg' running: {stderr[-2000:]}"
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    assert process.returncode == 1, stderr
    _, lines = summary(out)
    assert {line["status"] for line in lines if line["name"] in GOOD} == {"done"}
    for name in GOOD:
        assert not list((out / name).glob(".startnet-staging-*"))
        results = json.loads((out / name / "results.json").read_text())
        _same_structures(results["structures"], json.loads((serial[name] / "results.json").read_text())["structures"],
                         name)


def _thread_settings():
    """In a worker: what numba, ITK and the BLAS variables are set to, and how the process was started."""
    import multiprocessing

    import numba

    from startnet.batch.task import set_threads

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    set_threads(int(os.environ["NUMBA_NUM_THREADS"]))
    return {"itk_at_start": before, "itk": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
            "numba": numba.get_num_threads(), "openblas": os.environ.get("OPENBLAS_NUM_THREADS"),
            "start_method": multiprocessing.get_start_method(allow_none=True) or "spawn"}


@pytest.mark.parametrize("threads", [1, 2])
def test_local_workers_run_with_the_threads_asked_for(threads):
    """--threads-per-worker governs numba, the BLAS variables and ITK (whose own default is every core: two
    workers would each run two registration threads on two cores); the environment is restored after."""
    from startnet.batch.cluster import THREAD_VARIABLES, open_cluster, worker_start_method

    before = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    handle = open_cluster(None, 1, threads)
    try:
        settings = handle.client.submit(_thread_settings, pure=False).result(timeout=120)
    finally:
        handle.close()
    assert settings == {"itk_at_start": threads, "itk": threads, "numba": threads, "openblas": str(threads),
                        "start_method": worker_start_method()}
    assert {name: os.environ.get(name) for name in THREAD_VARIABLES} == before


def test_dask_settings_before_distributed_is_imported_equal_its_own():
    """The forkserver's environment is read before distributed is imported (from its distributed.yaml):
    it must equal what Dask itself configures once imported (MALLOC_TRIM_THRESHOLD_ and the thread variables)."""
    code = ("import json, sys\nfrom startnet.batch.cluster import pre_spawn_environ\nbefore = pre_spawn_environ()\n"
            "assert 'distributed' not in sys.modules\nimport distributed, dask\n"
            "print(json.dumps([before, dict(dask.config.get('distributed.nanny.pre-spawn-environ'))]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    before, imported = json.loads(result.stdout)
    assert before == imported and "MALLOC_TRIM_THRESHOLD_" in before
