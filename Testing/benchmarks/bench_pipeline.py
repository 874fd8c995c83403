"""``startnet run`` on the clinical-size phantom (4 time points, CT 512x512x~300, SPECT 128^3).

Reports the wall time of each pipeline step and the total (target: total under 60 s on 2 cores,
dosimetry not the largest share), and each step's share of the total.
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
    timings = result.results["provenance"]["timings_s"]
    for step, seconds in timings.items():
        table.add(f"step {step}", f"{seconds:.1f} s", ratio=seconds / total, note="ratio = share of the total")
    dosimetry = sum(timings.get(step, 0.0) for step in ("quantify", "kinetics", "dose"))
    largest = max(timings, key=timings.get)
    table.add("total startnet run", f"{total:.1f} s", target="< 60 s",
              note=f"dosimetry (quantify+kinetics+dose) {dosimetry:.1f} s; largest step: {largest}")
