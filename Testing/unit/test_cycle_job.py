"""The cycle's dosimetry as a background job (what the Slicer Dosimetry module runs in PythonSlicer).

- a job folder written from a phantom cycle held in memory, run in a real child process, gives
  the same kidney doses as the in-process chain (registered_from_transforms -> structures ->
  analyse_cycle) and writes the outputs;
- its stdout lines parse into progress (rising to 1), staging and done events;
- killing the child mid-run leaves the previous run's files untouched and no staging folder;
- a damaged job folder gives one error line naming the file, with exit code 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from phantom_cycle import analyse_in_memory, phantom_job_inputs

from startnet.cycle.job import JOB_FILE, discard_staging, parse_line, read_job, write_job
from startnet.cycle.job_process import start_job
from startnet.cycle.outputs import STAGING_PREFIX
from startnet.phantom import PhantomConfig, build_phantom

PACKAGE = Path(__file__).resolve().parents[2] / "StartNetExtension" / "StartNetCore"
KIDNEYS = ("kidney_left", "kidney_right")


@pytest.fixture(scope="module")
def phantom():
    return build_phantom(PhantomConfig(preset="small", seed=5))


@pytest.fixture(scope="module")
def in_process(phantom, tmp_path_factory):
    return analyse_in_memory(phantom_job_inputs(phantom, tmp_path_factory.mktemp("unused")))


def _wait(job, timeout_s=600.0):
    events, started = [], time.monotonic()
    while True:
        events += job.poll()
        if job.finished:
            events += job.poll()
            return events
        assert time.monotonic() - started < timeout_s, "job did not finish"
        time.sleep(0.05)


def test_job_in_a_child_process_gives_the_in_process_doses(phantom, in_process, tmp_path):
    inputs = phantom_job_inputs(phantom, tmp_path / "out")
    write_job(tmp_path / "job", inputs)
    back = read_job(tmp_path / "job")  # lossless: overlapping segments kept (kidney and its cortex)
    assert list(back.masks) == list(inputs.masks)
    for name, mask in inputs.masks.items():
        assert np.array_equal(sitk.GetArrayViewFromImage(back.masks[name]), sitk.GetArrayViewFromImage(mask)), name
    assert back.cycle.to_dict() == json.loads(json.dumps(inputs.cycle.to_dict()))

    job = start_job(tmp_path / "job", package_folder=PACKAGE)
    events = _wait(job)
    assert job.returncode == 0, job.stderr_tail()
    assert job.error is None
    fractions = [e.fraction for e in events if e.kind == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0) and len(fractions) > 5
    assert {"register", "segment", "quantify", "kinetics", "dose", "outputs"} <= {
        e.stage for e in events if e.kind == "progress"}
    assert [e.kind for e in events].count("staging") == 1 and events[-1].kind == "done"
    assert job.done == {"out_dir": str(tmp_path / "out"), "results": "results.json",
                        "charts": str(tmp_path / "job" / "charts.json")}
    charts = json.loads((tmp_path / "job" / "charts.json").read_text())["structures"]
    assert list(charts) == list(in_process.results["structures"])
    assert charts["kidney_left"]["colour"] == [0.9, 0.4, 0.3]
    assert len(charts["kidney_left"]["tac"]["t_h"]) == len(phantom.timepoints)

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for kidney in KIDNEYS:
        assert results["structures"][kidney]["mean_gy"] == in_process.results["structures"][kidney]["mean_gy"]
    assert results["kidneys_mean_gy"] == in_process.results["kidneys_mean_gy"]
    assert results["provenance"]["structures_source"] == "scene segmentation 'Structures'"
    assert (tmp_path / "out" / "dose.nrrd").is_file() and (tmp_path / "out" / "rtdose.dcm").is_file()
    assert not list((tmp_path / "out").glob(STAGING_PREFIX + "*"))


def test_killing_the_job_keeps_the_previous_results(phantom, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    previous = '{"kidneys_mean_gy": 1.0}'
    (out / "results.json").write_text(previous)
    write_job(tmp_path / "job", phantom_job_inputs(phantom, out))
    job = start_job(tmp_path / "job", package_folder=PACKAGE)
    started = time.monotonic()
    while not any(e.kind == "progress" and e.stage == "kinetics" for e in job.poll()):
        assert job.running and time.monotonic() - started < 300, job.stderr_tail()
        time.sleep(0.02)
    assert job.staging and Path(job.staging).is_dir()  # the outputs are being prepared
    job.cancel()
    assert job.returncode != 0 and job.cancelled and job.done is None
    assert (out / "results.json").read_text() == previous
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]  # no staging, no half-written files


def test_a_damaged_job_folder_names_the_file(phantom, tmp_path):
    write_job(tmp_path / "job", phantom_job_inputs(phantom, tmp_path / "out"))
    (tmp_path / "job" / "tp1_spect.nrrd").unlink()
    run = subprocess.run([sys.executable, "-m", "startnet.cycle.job", str(tmp_path / "job")], capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(PACKAGE), "PATH": ""})
    assert run.returncode == 2
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1
    event = parse_line(lines[0])
    assert event.kind == "error" and "tp1_spect.nrrd" in event.text and "missing" in event.text
    assert not (tmp_path / "out").exists()  # nothing written for a job that could not be read

    (tmp_path / "job" / JOB_FILE).write_text("{not json")
    from startnet.errors import InputError

    with pytest.raises(InputError, match=r"job\.json: not readable JSON"):
        read_job(tmp_path / "job")


def test_parse_line():
    assert parse_line("") is None
    event = parse_line('{"progress": 0.42, "stage": "dose", "text": "absorbed dose"}')
    assert (event.kind, event.fraction, event.stage, event.text) == ("progress", 0.42, "dose", "absorbed dose")
    assert parse_line('{"progress": 7}').fraction == 1.0
    assert parse_line('{"log": "INFO x: y"}').text == "INFO x: y"
    assert parse_line('{"error": "job.json: missing"}').kind == "error"
    done = parse_line('{"done": {"out_dir": "/o", "results": "results.json"}}')
    assert done.kind == "done" and done.value["results"] == "results.json"
    assert parse_line("numba: compiling").kind == "log"  # a stray line of a library is a log line
    assert parse_line('{"progress": "x"}').kind == "log"


def test_discard_staging_only_removes_staging_folders(tmp_path):
    other = tmp_path / "results"
    other.mkdir()
    assert not discard_staging(other) and other.is_dir()
    staging = tmp_path / (STAGING_PREFIX + "abc")
    staging.mkdir()
    (staging / "dose.nrrd").write_text("x")
    assert discard_staging(staging) and not staging.exists()
