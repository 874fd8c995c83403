"""CAL.json written by several processes at once (two physicists, the Slicer panel and a command line).

Each writer process merges its own steps into the same file many times while a reader process reads
it continuously. Every step of every writer must be in the final file (no lost read-modify-write)
and every read must see a complete, valid calibration (never a half-written file). A writer that
cannot get the lock in time gets one line naming the file and the holder.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from startnet.calibration.calfile import merge_into, read_calibration
from startnet.errors import OutputError
from startnet.filelock import exclusive_lock, lock_path

CAMERA = {"manufacturer": "Acme", "model": "Gamma 9", "serial": "SN-42", "collimator": "MELP",
          "energy_windows": [], "reconstruction": {}}
WRITERS = 4
STEPS_PER_WRITER = 25


def _writer(path: str, writer: int, start) -> None:
    start.wait()
    for step in range(STEPS_PER_WRITER):
        merge_into(path, CAMERA, {f"value_writer{writer}": step}, f"writer{writer}-step{step}",
                   {"command": f"writer {writer} step {step}"})


def _reader(path: str, start, stop, result) -> None:
    start.wait()
    reads, problems = 0, []
    while not stop.is_set():
        if os.path.exists(path):
            try:
                read_calibration(path)
                reads += 1
            except Exception as exc:  # noqa: BLE001 - any failure to read is what the test counts
                problems.append(str(exc))
    result.put((reads, problems[:3], len(problems)))


def test_concurrent_writers_lose_no_step_and_readers_never_see_a_partial_file(tmp_path):
    path = str(tmp_path / "CAL.json")
    ctx = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    start, stop, result = ctx.Barrier(WRITERS + 1), ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=_reader, args=(path, start, stop, result))
    writers = [ctx.Process(target=_writer, args=(path, w, start)) for w in range(WRITERS)]
    reader.start()
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    stop.set()
    reads, problems, n_problems = result.get(timeout=60)
    reader.join(60)
    data = read_calibration(path)
    expected = {f"writer{w}-step{s}" for w in range(WRITERS) for s in range(STEPS_PER_WRITER)}
    missing = expected - set(data["source"])
    assert not missing, f"{len(missing)} of {len(expected)} steps lost, e.g. {sorted(missing)[:3]}"
    assert [p.exitcode for p in writers] == [0] * WRITERS
    assert all(data[f"value_writer{w}"] == STEPS_PER_WRITER - 1 for w in range(WRITERS))
    assert reads > 0 and n_problems == 0, f"{n_problems} reads saw an invalid file, e.g. {problems}"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("CAL.json", lock_path(path).name))
    assert leftovers == []  # no temporary files left behind


def test_a_writer_that_cannot_get_the_lock_names_the_file_and_the_holder(tmp_path):
    path = tmp_path / "CAL.json"
    merge_into(path, CAMERA, {"sensitivity_cps_per_mbq": 8.0}, "sensitivity", {"command": "first"})
    # another open file description of the lock file: conflicts like another process would
    with exclusive_lock(path), pytest.raises(OutputError) as info:
        merge_into(path, CAMERA, {"psf_fwhm_mm": 15.0}, "recovery", {"command": "second"}, lock_timeout_s=0.2)
    message = str(info.value)
    assert str(path) in message and f"process {os.getpid()}" in message and "\n" not in message
    assert json.loads(path.read_text(encoding="utf-8"))["psf_fwhm_mm"] is None  # nothing half-applied
    merge_into(path, CAMERA, {"psf_fwhm_mm": 15.0}, "recovery", {"command": "second"}, lock_timeout_s=0.2)
    data = read_calibration(path)
    assert data["sensitivity_cps_per_mbq"] == 8.0 and data["psf_fwhm_mm"] == 15.0
    assert set(data["source"]) == {"sensitivity", "recovery"}
