"""Start a cycle job (:mod:`startnet.cycle.job`) in a child process, follow its lines, kill it on request.

No threads and no blocking read: the child's stdout and stderr go to files in the job folder
(``stdout.jsonl``, ``stderr.log``) and :meth:`JobProcess.poll` reads whatever complete lines have
arrived since the last call. The Slicer module calls ``poll`` from a ``qt.QTimer`` so the GUI
never waits for the child (a pipe would need a reader thread or a blocking ``readline``, which
is what freezes ``slicer.util.logProcessOutput``). :meth:`JobProcess.cancel` kills the child at
once and removes its staging folder, so the output folder keeps the previous run's files.

Pure Python (subprocess): the same class runs the job under ``PythonSlicer`` in Slicer and under
``sys.executable`` in the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from startnet.cycle.job import JobEvent, discard_staging, parse_line

STDOUT = "stdout.jsonl"
STDERR = "stderr.log"
JOB_MODULE = "startnet.cycle.job"


def job_command(python: str, job_dir) -> List[str]:
    """The command line that runs the job in ``job_dir`` with the interpreter ``python``."""
    return [str(python), "-m", JOB_MODULE, str(job_dir)]


def with_python_path(env: Mapping[str, str], folder) -> Dict[str, str]:
    """``env`` with ``folder`` first on PYTHONPATH (a child interpreter does not see a Slicer
    module's folder otherwise); PYTHONUNBUFFERED so each line arrives when written."""
    out = dict(env)
    parts = [str(folder)] + [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(folder)]
    out["PYTHONPATH"] = os.pathsep.join(parts)
    out["PYTHONUNBUFFERED"] = "1"
    return out


class JobProcess:
    """One running job: ``start()``, then ``poll()`` until ``finished``; ``cancel()`` kills it."""

    def __init__(self, job_dir, command: Sequence[str], env: Optional[Mapping[str, str]] = None):
        self.job_dir = Path(job_dir)
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self.process: Optional[subprocess.Popen] = None
        self.staging: Optional[str] = None
        self.done: Optional[Dict[str, object]] = None
        self.error: Optional[str] = None
        self.cancelled = False
        self._offset = 0
        self._partial = ""
        self._files = []

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> JobProcess:
        if self.process is not None:
            raise RuntimeError("this job was already started")
        # open for the child's lifetime, closed in _close() when it has exited or was killed
        out = open(self.job_dir / STDOUT, "wb")  # noqa: SIM115
        err = open(self.job_dir / STDERR, "wb")  # noqa: SIM115
        self._files = [out, err]
        kwargs = {}
        if os.name == "nt":  # no console window (what slicer.util.launchConsoleProcess does)
            info = subprocess.STARTUPINFO()
            info.dwFlags = 1
            info.wShowWindow = 0
            kwargs["startupinfo"] = info
        try:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                            env=self.env, cwd=str(self.job_dir), **kwargs)
        except OSError:
            self._close()
            raise
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def finished(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    @property
    def returncode(self) -> Optional[int]:
        return None if self.process is None else self.process.poll()

    def cancel(self) -> None:
        """Kill the child now (no grace period), wait for it, remove its staging folder."""
        if self.process is None:
            return
        self.cancelled = True
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.poll()  # the staging line may have arrived just before the kill
        discard_staging(self.staging)
        self._close()

    def _close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []

    # -- output -----------------------------------------------------------------------------
    def poll(self) -> List[JobEvent]:
        """Events of the complete stdout lines written since the last call (never blocks).

        After the child has exited the last line is read even without a newline, and a child that
        died without an ``error`` or ``done`` line gets an ``error`` event with its exit code and
        the end of its stderr.
        """
        exited = self.finished  # before reading: after the exit every line is in the file
        path = self.job_dir / STDOUT
        chunk = ""
        if path.is_file():
            with open(path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
            self._offset += len(data)
            chunk = data.decode("utf-8", errors="replace")
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = "" if exited else lines.pop()
        events = []
        for line in lines:
            event = parse_line(line)
            if event is None:
                continue
            if event.kind == "staging":
                self.staging = event.text
            elif event.kind == "done":
                self.done = event.value
            elif event.kind == "error":
                self.error = event.text
            events.append(event)
        if exited and self.done is None and self.error is None and not self.cancelled:
            self.error = (f"the dosimetry process stopped with exit code {self.returncode}"
                          + (f": {self.stderr_tail()}" if self.stderr_tail() else ""))
            events.append(JobEvent("error", text=self.error))
        if exited:
            self._close()
        return events

    def stderr_tail(self, lines: int = 5) -> str:
        path = self.job_dir / STDERR
        if not path.is_file():
            return ""
        text = path.read_bytes().decode("utf-8", errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])


def start_job(job_dir, python: Optional[str] = None, package_folder=None,
              env: Optional[Mapping[str, str]] = None) -> JobProcess:
    """Start the job in ``job_dir`` with ``python`` (default: this interpreter), ``package_folder``
    (the folder holding ``startnet``) first on PYTHONPATH."""
    folder = package_folder or Path(__file__).resolve().parents[2]
    environment = with_python_path(os.environ if env is None else env, folder)
    return JobProcess(job_dir, job_command(python or sys.executable, job_dir), environment).start()
