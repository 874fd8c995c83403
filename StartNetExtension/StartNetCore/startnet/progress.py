"""Progress reporting and cancellation shared by the command line and the Slicer modules.

A :class:`Progress` splits a run into weighted stages; each stage reports a fraction of itself
and the callback receives the overall fraction and a message. The Slicer widget's callback
raises when the user pressed Cancel, which stops the run between two steps.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ProgressCallback = Callable[[float, str], None]


class Progress:
    """Weighted stages -> overall fraction; records each stage's wall time for the results."""

    def __init__(self, stages: Sequence[Tuple[str, float]], callback: Optional[ProgressCallback] = None):
        total = float(sum(weight for _, weight in stages))
        self._starts: Dict[str, float] = {}
        self._weights: Dict[str, float] = {}
        running = 0.0
        for name, weight in stages:
            self._starts[name] = running / total
            self._weights[name] = weight / total
            running += weight
        self._callback = callback
        self._current: Optional[str] = None
        self._stage_started = 0.0
        self.timings_s: Dict[str, float] = {}
        self.order: List[str] = [name for name, _ in stages]

    def stage(self, name: str, message: str = "") -> None:
        self._finish_current()
        self._current = name
        self._stage_started = time.perf_counter()
        self.update(0.0, message or name)

    def update(self, fraction: float, message: str = "") -> None:
        if self._current is None or self._callback is None:
            return
        overall = self._starts[self._current] + self._weights[self._current] * max(0.0, min(1.0, fraction))
        self._callback(overall, message or self._current)

    def done(self, message: str = "done") -> None:
        self._finish_current()
        if self._callback is not None:
            self._callback(1.0, message)

    def timings_so_far_s(self) -> Dict[str, float]:
        """Wall time of each finished stage and of the current one up to now."""
        timings = dict(self.timings_s)
        if self._current is not None:
            timings[self._current] = time.perf_counter() - self._stage_started
        return timings

    def _finish_current(self) -> None:
        if self._current is not None:
            self.timings_s[self._current] = time.perf_counter() - self._stage_started
            self._current = None


def terminal_progress(stream=None, width: int = 30) -> ProgressCallback:
    """A one-line progress bar on stderr (plain lines when the stream is not a terminal)."""
    stream = stream or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    last = {"message": None}

    def report(fraction: float, message: str) -> None:
        filled = int(round(fraction * width))
        bar = "#" * filled + "-" * (width - filled)
        if interactive:
            stream.write(f"\r[{bar}] {100 * fraction:5.1f} % {message[:60]:<60}")
            if fraction >= 1.0:
                stream.write("\n")
        elif message != last["message"]:
            stream.write(f"[{bar}] {100 * fraction:5.1f} % {message}\n")
        last["message"] = message
        stream.flush()

    return report
