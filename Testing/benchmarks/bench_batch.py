"""``startnet batch`` scaling: 4 small phantom cycles with 1 and with 2 Dask workers (local cluster).

Reports the wall time of each (cluster start included), the speed-up (goal >= 1.7x on 2 cores),
the peak resident memory per worker process (ru_maxrss of the worker, as ``startnet batch``
prints it), and the wall time of 300 x 7 such cycles per worker count. The README projects the
full trial of clinical cycles from these and bench_pipeline's clinical ``startnet run`` time.
Each cycle is a copy of one phantom's DICOM under its own folder, run with ``--force``. Each worker
count is timed twice, alternating (1, 2, 1, 2 workers), and the shorter time of each is used: on a
shared 2-core machine a single timing moves by several per cent between identical runs, which is
larger than the differences this measures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CYCLES = 4
REPEATS = 2
TRIAL_CYCLES = 300 * 7


def _batch(manifest: Path, out: Path, workers: int, threads: int):
    """(wall time s, peak memory per worker MB as the command reports it)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "startnet", "batch", str(manifest), "--out", str(out),
                             "--workers", str(workers), "--threads-per-worker", str(threads), "--force", "--quiet"],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"startnet batch exit {result.returncode}: {result.stderr[-2000:]}")
    seconds = time.perf_counter() - start
    match = re.search(r"peak memory per worker (\d+) MB", result.stdout)
    return seconds, float(match.group(1)) if match else float("nan")


def run(table) -> None:
    from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

    with tempfile.TemporaryDirectory(prefix="startnet-bench-batch-") as folder:
        root = Path(folder)
        phantom = build_phantom(PhantomConfig(preset="small", seed=7))
        files = write_phantom_dicom(phantom, root / "phantom")
        lines = ["input_dir,name,segmentation,reference_timepoint"]
        for index in range(CYCLES):
            shutil.copytree(files.dicom_dir, root / f"cycle{index}")
            lines.append(f"cycle{index},c{index},{files.segmentation_nrrd},{phantom.reference_index}")
        manifest = root / "manifest.csv"
        manifest.write_text("\n".join(lines) + "\n")
        _batch(manifest, root / "warm", 1, 1)  # numba's cache and the OS file cache, not measured
        # scaling of the batch engine: workers of one thread each (the way a cluster adds workers)
        timings = {1: [], 2: []}
        for _ in range(REPEATS):
            for workers in (1, 2):
                timings[workers].append(_batch(manifest, root / f"out{workers}", workers, 1))
        measured = {workers: min(values) for workers, values in timings.items()}
        # for scale: one worker given both cores' threads (numba/BLAS parallel inside one cycle)
        one_wide = _batch(manifest, root / "out1x2", 1, 2)[0]
    seconds = {workers: value[0] for workers, value in measured.items()}
    peak_mb = measured[2][1]
    speedup = seconds[1] / seconds[2]
    spread = {workers: ", ".join(f"{value[0]:.1f}" for value in values) for workers, values in timings.items()}
    table.add(f"{CYCLES} small cycles, 1 worker x 1 thread", f"{seconds[1]:.1f} s", note=f"timings {spread[1]} s")
    table.add(f"{CYCLES} small cycles, 2 workers x 1 thread", f"{seconds[2]:.1f} s", ratio=speedup, target=">= 1.7x",
              note=f"ratio = speed-up; timings {spread[2]} s; {os.cpu_count()} cores on this machine")
    table.add(f"{CYCLES} small cycles, 1 worker x 2 threads", f"{one_wide:.1f} s", ratio=one_wide / seconds[2],
              note="ratio to 2 workers x 1 thread: what running cycles side by side gains over threads inside one")
    table.add("peak memory per worker (small cycle)", f"{peak_mb:.0f} MB")
    per_cycle = {workers: seconds[workers] / CYCLES for workers in (1, 2)}
    for workers, total in ((1, per_cycle[1]), (2, per_cycle[2])):
        table.add(f"projected {TRIAL_CYCLES} small-size cycles, {workers} worker(s)",
                  f"{total * TRIAL_CYCLES / 3600:.1f} h",
                  note="scale by the clinical/small run time (bench_pipeline) for clinical cycles")

