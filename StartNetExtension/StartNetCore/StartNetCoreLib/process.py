"""A cycle job in a PythonSlicer child process, followed from the GUI without freezing it (Slicer only).

SlicerTotalSegmentator and SlicerElastix run their work as a child process (``PythonSlicer`` via
``slicer.util.launchConsoleProcess`` / ``subprocess.Popen`` with a hidden console on Windows) and
read its output line by line; both read in a blocking loop (``readline`` + ``processEvents``),
so the GUI waits between lines and Cancel is only seen when the child prints. Here the child's
stdout goes to a file and a ``qt.QTimer`` polls it (:class:`startnet.cycle.job_process.JobProcess`):
the GUI never waits, Cancel kills the child at once.

Environment: like ``launchConsoleProcess``'s default (TotalSegmentator), the startup environment
(``slicer.util.startupEnvironment()``, Slicer v5.8.1 and v5.10.0) in which ``PythonSlicer`` sets
up Slicer's Python itself; the StartNetCore folder is put first on PYTHONPATH because the child
does not see a scripted module's folder otherwise. ``shutil.which("PythonSlicer")`` is how
``slicer.util._executePythonModule`` finds it (on PATH inside Slicer, both tags).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import qt
import slicer

POLL_INTERVAL_MS = 200


def pythonSlicerExecutable() -> str:
    """Path of PythonSlicer (Slicer's own Python with its packages)."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    candidate = Path(sys.executable).with_name("PythonSlicer" + (".exe" if os.name == "nt" else ""))
    if candidate.is_file():
        return str(candidate)
    raise RuntimeError("PythonSlicer executable not found next to Slicer; the dosimetry cannot run in the background")


def startNetCoreFolder() -> str:
    """The folder that holds the ``startnet`` package (this extension's StartNetCore module folder)."""
    import startnet

    return str(Path(startnet.__file__).resolve().parent.parent)


class BackgroundJob:
    """Start a job folder's run in PythonSlicer; ``onEvent(JobEvent)`` for each line, ``onFinished(job)`` once.

    ``running`` is True from :meth:`start` until the child has exited or was cancelled; the widget
    uses it to refuse a second run.
    """

    def __init__(self, jobDir, onEvent, onFinished, intervalMs: int = POLL_INTERVAL_MS):
        self.jobDir = str(jobDir)
        self.onEvent = onEvent
        self.onFinished = onFinished
        self.job = None
        self.timer = qt.QTimer()
        self.timer.setInterval(intervalMs)
        self.timer.connect("timeout()", self._poll)

    @property
    def running(self) -> bool:
        return self.job is not None and self.timer.active

    def start(self) -> None:
        from startnet.cycle.job_process import start_job

        if self.running:
            raise RuntimeError("a dosimetry run is already in progress")
        self.job = start_job(self.jobDir, python=pythonSlicerExecutable(), package_folder=startNetCoreFolder(),
                             env=slicer.util.startupEnvironment())
        self.timer.start()

    def cancel(self) -> None:
        """Kill the child now (its staging folder is removed); onFinished is called."""
        if self.job is None or not self.timer.active:
            return
        self.timer.stop()
        self.job.cancel()
        self.onFinished(self.job)

    def _poll(self) -> None:
        job = self.job
        if job is None:
            self.timer.stop()
            return
        for event in job.poll():
            self.onEvent(event)
        if job.finished:
            for event in job.poll():
                self.onEvent(event)
            self.timer.stop()
            self.onFinished(job)
