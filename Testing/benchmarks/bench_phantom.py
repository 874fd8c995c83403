"""Phantom build and DICOM write times (small and clinical presets), measured side by side.

Ratios: writing the CT DICOM series vs writing the same pixel bytes into the same number of plain
files (the floor any DICOM writer has); the activity splatting kernel vs one scipy
``map_coordinates`` linear pull-resampling of the same SPECT grid (a cheaper but not
activity-conserving alternative); the numba kernel's first-call compile time in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from startnet.phantom import PhantomConfig, build_phantom, motion, render, write_phantom_dicom


def _raw_write(files, payloads) -> float:
    start = time.perf_counter()
    for path, data in zip(files, payloads):
        with open(path, "wb") as handle:
            handle.write(data)
    return time.perf_counter() - start


def _compile_time() -> float:
    code = ("import time, numpy as np; from startnet.phantom import render; from startnet.phantom.config import "
            "GridSpec; g = GridSpec((4, 4, 4), (1.0, 1.0, 1.0)); t = time.perf_counter(); "
            "render.splat_activity(np.ones((4, 4, 4), np.uint8), np.ones(256), g, g, np.eye(3), np.zeros(3)); "
            "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(table) -> None:
    table.add("numba splat kernel first-call compile (fresh cache)", f"{_compile_time():.2f} s")
    for preset in ("small", "clinical"):
        start = time.perf_counter()
        phantom = build_phantom(PhantomConfig(preset=preset, seed=1))
        build_s = time.perf_counter() - start
        steps = ", ".join(f"{k} {v:.1f}" for k, v in phantom.timings_s.items() if k != "total")
        table.add(f"{preset}: build (4 time points, noise+blur+motion)", f"{build_s:.2f} s", note=steps)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            files = write_phantom_dicom(phantom, Path(tmp) / "phantom")
            write_s = time.perf_counter() - start
            n_files = sum(len(t.ct_files) + 1 for t in files.timepoints)
            table.add(f"{preset}: write DICOM + seg + truth", f"{write_s:.2f} s ({n_files} files)",
                      note=", ".join(f"{k} {v:.1f}" for k, v in files.timings_s.items() if k != "total"))
            ct_files = [p for t in files.timepoints for p in t.ct_files]
            payloads = [bytes(p.stat().st_size) for p in ct_files]
            raw_dir = Path(tmp) / "raw"
            raw_dir.mkdir()
            raw_s = _raw_write([raw_dir / f"f{i}" for i in range(len(ct_files))], payloads)
            ct_s = files.timings_s["ct_dicom"]
            small_files = preset == "small"
            table.add(f"{preset}: CT DICOM write vs raw bytes", f"{ct_s:.2f} s vs {raw_s:.2f} s",
                      ratio=ct_s / raw_s, target="" if small_files else "<= 3x",
                      note="per-file pydicom overhead dominates 32 kB files" if small_files else "")
        tp = phantom.timepoints[1]
        lut = np.zeros(256)
        lut[1:18] = 1.0
        matrix, offset = motion.affine_parts(tp.true_transform)
        start = time.perf_counter()
        render.splat_activity(phantom.compartments, lut, phantom.config.ct_grid, phantom.config.spect_grid,
                              matrix, offset)
        splat_s = time.perf_counter() - start
        spect = phantom.config.spect_grid
        coords = np.indices(spect.shape_zyx, dtype=np.float32)
        ratio = np.array(spect.spacing_mm[::-1], dtype=np.float32)[:, None, None, None] / np.array(
            phantom.config.ct_grid.spacing_mm[::-1], dtype=np.float32)[:, None, None, None]
        start = time.perf_counter()
        ndimage.map_coordinates(phantom.compartments.astype(np.float32), coords * ratio, order=1)
        pull_s = time.perf_counter() - start
        table.add(f"{preset}: activity splat (1 time point) vs map_coordinates pull", f"{splat_s:.2f} s vs "
                  f"{pull_s:.2f} s", ratio=splat_s / pull_s, target="<= 5x",
                  note="splat conserves activity exactly; pull-resampling does not")
        del phantom
