"""Submits a batch's rows to the cluster and follows them to the end, reporting progress.

Each row is one task (``startnet.batch.task.process_row``), so a failing row fails alone. A task
whose worker died more often than the scheduler allows ends as KilledWorker: that row is
reported as failed with the reason, the others go on. Progress lines go to stderr: rows done /
total, failures so far, and the estimated time left from the rows computed so far.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict, List, Optional, TextIO

from startnet.batch.task import RowOutcome, RowTask, one_line, process_row


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class BatchProgress:
    """'[batch] 3/10 cycles (1 skipped, 1 failed) elapsed 1:05, about 2:10 left' lines on a stream."""

    def __init__(self, total: int, stream: Optional[TextIO] = None, quiet: bool = False):
        self.total, self.stream, self.quiet = total, stream or sys.stderr, quiet
        self.started = time.perf_counter()
        self.finished = self.failed = self.skipped = 0

    def seconds_left(self) -> Optional[float]:
        computed = self.finished - self.skipped
        if computed <= 0:
            return None
        elapsed = time.perf_counter() - self.started
        return elapsed / computed * (self.total - self.finished)

    def add(self, outcome: RowOutcome) -> None:
        self.finished += 1
        self.failed += outcome.status == "failed"
        self.skipped += outcome.status == "skipped"
        if self.quiet:
            return
        left = self.seconds_left()
        eta = "" if left is None or self.finished == self.total else f", about {_duration(left)} left"
        line = (f"[batch] {self.finished}/{self.total} cycles ({self.skipped} skipped, {self.failed} failed) "
                f"elapsed {_duration(time.perf_counter() - self.started)}{eta}; {outcome.name}: {outcome.status}")
        if outcome.error:
            line += f": {outcome.error}"
        self.stream.write(line + "\n")
        self.stream.flush()


def run_tasks(client, tasks: List[RowTask], progress: BatchProgress,
              on_outcome: Optional[Callable[[RowOutcome], None]] = None) -> List[RowOutcome]:
    """Outcomes in the tasks' order. On KeyboardInterrupt the tasks are cancelled and it re-raises."""
    from distributed import as_completed

    futures = {client.submit(process_row, task, key=f"startnet-batch-{index}-{task.name}", pure=False): task
               for index, task in enumerate(tasks)}
    outcomes: Dict[str, RowOutcome] = {}
    try:
        for future in as_completed(list(futures)):
            task = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, a lost connection: the row failed
                reason = ("its worker died repeatedly (killed or out of memory)"
                          if type(exc).__name__ == "KilledWorker" else one_line(exc))
                outcome = RowOutcome(task.name, "failed", error=reason)
            outcomes[task.name] = outcome
            progress.add(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    except BaseException:
        client.cancel(list(futures), force=True)
        raise
    return [outcomes[task.name] for task in tasks]
