"""Per-voxel kinetics benchmark: throughput, numba cold/warm cache compile time, peak memory.

Grid 256 x 256 x 200 with 4 time points (1, 24, 96, 168 h), Poisson-noisy synthetic activity in
an elliptic body (background T_eff 30 h, two "kidneys" with uptake and T_eff 50 h), fitted on
2 threads. Reported side by side in one run:

* fit throughput in voxels/s, and its time relative to a vectorised NumPy trapezoid TIA of the
  same array (the cheapest possible per-voxel TIA: a memory-bound baseline);
* first-call time of ``fit_voxels`` in a fresh process with an empty ``NUMBA_CACHE_DIR`` (cold:
  compiles) vs a second fresh process on the same cache (warm: must load, not compile; asserted
  from the dispatcher's cache hit/miss counters);
* peak memory allocated during the fit (tracemalloc, NumPy allocations) as a multiple of one
  float32 volume of the grid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.integrate import trapezoid

GRID = (200, 256, 256)
TIMES_H = np.array([1.0, 24.0, 96.0, 168.0])
CORE = Path(__file__).resolve().parents[2] / "StartNetExtension" / "StartNetCore"

_CHILD = r"""
import json, time, sys
import numpy as np
from scipy.integrate import trapezoid
t0 = time.perf_counter()
from startnet.kinetics.voxel import fit_voxels, _fit_kernel
t_import = time.perf_counter() - t0
act = np.abs(np.random.default_rng(0).normal(1.0, 0.1, (4, 4, 8, 8))).astype(np.float32)
t1 = time.perf_counter()
fit_voxels([1.0, 24.0, 96.0, 168.0], act, np.ones((4, 8, 8), bool))
t_first = time.perf_counter() - t1
stats = _fit_kernel.stats
print(json.dumps({"import_s": t_import, "first_call_s": t_first,
                  "cache_hits": sum(stats.cache_hits.values()), "cache_misses": sum(stats.cache_misses.values())}))
"""


def _phantom(rng):
    z, y, x = np.ogrid[: GRID[0], : GRID[1], : GRID[2]]
    body = ((y - 128) / 110.0) ** 2 + ((x - 128) / 90.0) ** 2 <= 1.0
    body = np.broadcast_to(body, GRID)
    kidneys = np.zeros(GRID, bool)
    for cx in (85, 171):
        kidneys |= ((z - 100) / 30.0) ** 2 + ((y - 150) / 18.0) ** 2 + ((x - cx) / 14.0) ** 2 <= 1.0
    act = np.empty((len(TIMES_H),) + GRID, np.float32)
    k_bg, k_kid, k_up = np.log(2) / 30.0, np.log(2) / 50.0, 0.3
    for i, t in enumerate(TIMES_H):
        frame = np.where(body, np.float32(0.02 * np.exp(-k_bg * t)), np.float32(0.0))
        frame = np.where(kidneys, np.float32(0.2 * (np.exp(-k_kid * t) - np.exp(-k_up * t))), frame)
        # Poisson noise at 500 counts per MBq per voxel
        act[i] = rng.poisson(frame * 500.0).astype(np.float32) / np.float32(500.0)
    return act, np.ascontiguousarray(body)


def _child(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(CORE))
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(table) -> None:
    import numba

    from startnet.kinetics.voxel import fit_voxels

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    threads = numba.get_num_threads()

    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache_dir:
        cold = _child(cache_dir)
        warm = _child(cache_dir)
    if cold["cache_misses"] < 1 or warm["cache_misses"] != 0 or warm["cache_hits"] < 1:
        raise AssertionError(f"numba cache not reused: cold {cold}, warm {warm}")
    table.add("fit_voxels first call, cold numba cache", f"{cold['first_call_s']:.2f} s",
              note=f"cache misses {cold['cache_misses']}")
    table.add("fit_voxels first call, warm numba cache", f"{warm['first_call_s']:.3f} s",
              ratio=cold["first_call_s"] / max(warm["first_call_s"], 1e-9), target="warm: no recompilation",
              note=f"cold/warm; warm cache hits {warm['cache_hits']}, misses {warm['cache_misses']}")

    rng = np.random.default_rng(5)
    act, body = _phantom(rng)
    n_vox = int(np.prod(GRID))
    fit_voxels(TIMES_H, act[:, :2], body[:2])  # compile / load outside the timing
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        result = fit_voxels(TIMES_H, act, body)
        best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    baseline = trapezoid(act, TIMES_H, axis=0)
    base_t = time.perf_counter() - start
    del baseline
    table.add(f"per-voxel fit throughput ({GRID[2]}x{GRID[1]}x{GRID[0]} x 4 tp, {threads} threads)",
              f"{n_vox / best / 1e6:.1f} Mvoxel/s ({best:.2f} s)", ratio=best / base_t, target=">= a few Mvoxel/s",
              note=f"ratio = fit / vectorised trapezoid TIA; body voxels {int(body.sum())}; "
                   f"fallbacks {result.n_fallback}; codes {result.counts}")

    volume_bytes = n_vox * 4
    tracemalloc.start()
    fit_voxels(TIMES_H, act, body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    table.add("fit_voxels peak allocation", f"{peak / 2**20:.0f} MiB", ratio=peak / volume_bytes,
              target="small multiple of one volume", note="multiple of one float32 volume (input not counted)")
