"""Phantom build and DICOM write times (small and clinical presets), measured side by side.

Each preset is measured in a fresh process (so its peak memory is its own). Ratios: writing the
CT DICOM series vs writing the same number of bytes into the same number of plain files (the
floor any DICOM writer has); the activity splatting kernel vs one scipy ``map_coordinates``
linear pull-resampling of the same SPECT grid (cheaper but not activity-conserving); plus the
numba kernels' first-call compile time with an empty cache.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from startnet.phantom import PhantomConfig, build_phantom, motion, render, write_phantom_dicom


def _raw_write(paths, sizes) -> float:
    start = time.perf_counter()
    for path, size in zip(paths, sizes):
        with open(path, "wb") as handle:
            handle.write(bytes(size))
    return time.perf_counter() - start


def measure(preset: str) -> dict:
    """Build + write one preset and time its parts (run in a fresh process)."""
    out: dict = {}
    start = time.perf_counter()
    phantom = build_phantom(PhantomConfig(preset=preset, seed=1))
    out["build_s"] = time.perf_counter() - start
    out["build_steps"] = {k: v for k, v in phantom.timings_s.items() if k != "total"}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        files = write_phantom_dicom(phantom, Path(tmp) / "phantom")
        out["write_s"] = time.perf_counter() - start
        out["write_steps"] = {k: v for k, v in files.timings_s.items() if k != "total"}
        ct_files = [p for t in files.timepoints for p in t.ct_files]
        out["files"] = len(ct_files) + len(files.timepoints)
        out["bytes"] = sum(p.stat().st_size for t in files.timepoints for p in [*t.ct_files, t.spect_file])
        raw_dir = Path(tmp) / "raw"
        raw_dir.mkdir()
        out["raw_ct_s"] = _raw_write([raw_dir / f"f{i}" for i in range(len(ct_files))],
                                     [p.stat().st_size for p in ct_files])
    lut = np.zeros(256)
    lut[1:18] = 1.0
    matrix, offset = motion.affine_parts(phantom.timepoints[1].true_transform)
    start = time.perf_counter()
    render.splat_activity(phantom.compartments, lut, phantom.config.ct_grid, phantom.config.spect_grid, matrix,
                          offset)
    out["splat_s"] = time.perf_counter() - start
    spect, ct = phantom.config.spect_grid, phantom.config.ct_grid
    scale = (np.array(spect.spacing_mm[::-1]) / np.array(ct.spacing_mm[::-1])).astype(np.float32)
    coords = np.indices(spect.shape_zyx, dtype=np.float32) * scale[:, None, None, None]
    start = time.perf_counter()
    ndimage.map_coordinates(phantom.compartments.astype(np.float32), coords, order=1)
    out["pull_s"] = time.perf_counter() - start
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["ct_float32_mb"] = float(np.prod(ct.shape_zyx)) * 4 / 2**20
    return out


def _compile_time() -> float:
    code = ("import time, numpy as np; from startnet.phantom import ctsim, render; from startnet.phantom.config "
            "import GridSpec; import SimpleITK as sitk; g = GridSpec((4, 4, 4), (1.0, 1.0, 1.0)); "
            "c = np.ones((4, 4, 4), np.uint8); t = time.perf_counter(); "
            "render.splat_activity(c, np.ones(256), g, g, np.eye(3), np.zeros(3)); "
            "ctsim.moved_ct(c, g, sitk.Euler3DTransform(), 0.0, np.random.default_rng(0)); "
            "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(table) -> None:
    table.add("numba kernels first-call compile (empty cache)", f"{_compile_time():.2f} s")
    for preset in ("small", "clinical"):
        proc = subprocess.run([sys.executable, __file__, preset], capture_output=True, text=True, check=True)
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        table.add(f"{preset}: build (4 time points, noise+blur+motion)", f"{m['build_s']:.2f} s",
                  note=", ".join(f"{k} {v:.1f}" for k, v in m["build_steps"].items()))
        table.add(f"{preset}: write DICOM + seg + truth", f"{m['write_s']:.2f} s ({m['files']} files, "
                  f"{m['bytes'] / 2**20:.0f} MiB)", note=", ".join(f"{k} {v:.1f}" for k, v in m["write_steps"].items()))
        ct_s = m["write_steps"]["ct_dicom"]
        small_files = preset == "small"
        table.add(f"{preset}: CT DICOM write vs raw bytes", f"{ct_s:.2f} s vs {m['raw_ct_s']:.2f} s",
                  ratio=ct_s / m["raw_ct_s"], target="" if small_files else "<= 3x",
                  note="per-file pydicom overhead dominates 32 kB files" if small_files else "")
        table.add(f"{preset}: activity splat (1 time point) vs map_coordinates pull",
                  f"{m['splat_s']:.2f} s vs {m['pull_s']:.2f} s", ratio=m["splat_s"] / m["pull_s"], target="<= 5x",
                  note="splat conserves activity exactly; pull-resampling does not")
        table.add(f"{preset}: peak memory (build + write)", f"{m['peak_rss_mb']:.0f} MiB",
                  ratio=m["peak_rss_mb"] / m["ct_float32_mb"], note="ratio to one float32 CT volume")


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
