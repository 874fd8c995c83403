"""``startnet run`` on the clinical-size phantom (4 time points, CT 512x512x~300, SPECT 128^3).

Reports the wall time of each pipeline step and the total (target: total under 60 s on 2 cores,
dosimetry not the largest share), and each step's share of the total. Then the per-cycle cost as a
ratio to a floor (issue 13, goal <= 6x): reading the cycle's DICOM (``load_timepoints``, the same
call the run makes) plus one FFT convolution on the reference CT's grid
(``scipy.signal.fftconvolve`` of the float32 CT with a 9^3 kernel, mode "same"), both measured
right after the run in the same process.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def run(table) -> None:
    from startnet.cycle.run import RunOptions, run_cycle
    from startnet.phantom import PhantomConfig, build_phantom, write_phantom_dicom

    with tempfile.TemporaryDirectory(prefix="startnet-bench-pipeline-") as folder:
        start = time.perf_counter()
        phantom = build_phantom(PhantomConfig(preset="clinical", seed=2026))
        files = write_phantom_dicom(phantom, Path(folder) / "phantom")
        table.add("phantom build + DICOM write (not part of the run)", f"{time.perf_counter() - start:.1f} s")
        options = RunOptions(input_dir=str(files.dicom_dir), out_dir=str(Path(folder) / "out"),
                             segmentation_path=str(files.segmentation_nrrd),
                             reference_timepoint=phantom.reference_index, method="vsv-density")
        start = time.perf_counter()
        result = run_cycle(options)
        total = time.perf_counter() - start
        floor_load, floor_fft = _floor_s(str(files.dicom_dir))
    timings = result.results["provenance"]["timings_s"]
    for step, seconds in timings.items():
        table.add(f"step {step}", f"{seconds:.1f} s", ratio=seconds / total, note="ratio = share of the total")
    dosimetry = sum(timings.get(step, 0.0) for step in ("quantify", "kinetics", "dose"))
    largest = max(timings, key=timings.get)
    table.add("total startnet run", f"{total:.1f} s", target="< 60 s",
              note=f"dosimetry (quantify+kinetics+dose) {dosimetry:.1f} s; largest step: {largest}")
    floor = floor_load + floor_fft
    table.add("startnet run vs floor (read DICOM + 1 CT-grid FFT convolution)",
              f"{total:.1f} s vs {floor:.1f} s", ratio=total / floor, target="<= 6x",
              note=f"floor: DICOM read {floor_load:.1f} s + fftconvolve {floor_fft:.1f} s")


def _floor_s(dicom_dir: str):
    """(seconds to read the cycle's DICOM, seconds of one fftconvolve on the reference CT grid)."""
    import numpy as np
    import scipy.signal
    import SimpleITK as sitk

    from startnet.cycle.load import load_timepoints

    start = time.perf_counter()
    cycle, _ = load_timepoints(dicom_dir)
    load_s = time.perf_counter() - start
    ct = next(tp.ct_hu for tp in cycle.timepoints if tp.ct_hu is not None)
    volume = sitk.GetArrayFromImage(ct).astype(np.float32)
    kernel = np.full((9, 9, 9), 1.0 / 729.0, dtype=np.float32)
    start = time.perf_counter()
    scipy.signal.fftconvolve(volume, kernel, mode="same")
    return load_s, time.perf_counter() - start
