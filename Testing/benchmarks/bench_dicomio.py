"""``make bench`` (dicomio): load a clinical-size 4-time-point cycle vs simply reading its files.

The cycle (CT 512 x 512 x 312 + NM multi-frame SPECT 128^3 per time point, ~1250 files) is
generated once with the phantom's clinical preset into a temporary folder. The page cache is
warmed first so both sides read from memory; the baseline is the best of two passes reading
every file's bytes. Pixel reads are counted to show each file's pixel data is read once.
What remains above the baseline is pydicom's header parsing (~1 ms per file, once per file), the
HU/Bq/mL arithmetic and SimpleITK's copy of each volume; a page-cache read of bytes is a hard
baseline (several GB/s), hence a target of 20x rather than single digits.
"""

from __future__ import annotations

import collections
import gc
import os
import shutil
import tempfile
import time


def _files(root: str):
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]


def _read_all(paths) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as fh:
            total += len(fh.read())
    return total


def run(table) -> None:
    import startnet.dicomio.loader as loader_module
    from startnet.dicomio import Overrides, discover, load_cycle
    from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

    tmp = tempfile.mkdtemp(prefix="startnet-bench-dicomio-")
    try:
        start = time.perf_counter()
        config = PhantomConfig(preset="clinical", seed=11, units="counts")
        phantom = build_phantom(config)
        write_phantom_dicom(phantom, tmp)
        del phantom
        gc.collect()
        t_generate = time.perf_counter() - start
        paths = _files(tmp)
        n_bytes = _read_all(paths)  # warm the page cache
        raw = []
        for _ in range(2):
            t0 = time.perf_counter()
            _read_all(paths)
            raw.append(time.perf_counter() - t0)
        t_raw = min(raw)
        table.add("read all file bytes (baseline)", f"{t_raw:.2f} s for {len(paths)} files, {n_bytes / 1e6:.0f} MB",
                  note=f"cycle generated in {t_generate:.0f} s (not timed below)")

        t0 = time.perf_counter()
        discovery = discover(tmp)
        t_discover = time.perf_counter() - t0
        table.add("discover (headers, pixel data deferred)", f"{t_discover:.2f} s", ratio=t_discover / t_raw,
                  note=f"{len(discovery.series)} series")

        reads = collections.Counter()
        real_read_frames = loader_module.read_frames

        def counting(ds, path, *args):
            reads[path] += 1
            return real_read_frames(ds, path, *args)

        loader_module.read_frames = counting
        try:
            t0 = time.perf_counter()
            cycle = load_cycle(tmp, Overrides(calibration_cps_per_mbq=config.calibration_cps_per_mbq))
            t_load = time.perf_counter() - t0
        finally:
            loader_module.read_frames = real_read_frames
        dicom_files = sum(len(s.files) for s in discovery.series)
        table.add("load_cycle 4 time points (discover + pixels + calibration)", f"{t_load:.2f} s",
                  ratio=t_load / t_raw, target="<= 20x",
                  note=f"{len(cycle.timepoints)} tp; pixel reads {sum(reads.values())} for {dicom_files} DICOM "
                       f"files, max {max(reads.values())} per file")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
