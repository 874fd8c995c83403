"""``startnet batch``: every cycle of a manifest (or of a folder of cycles) on a Dask cluster.

    startnet batch MANIFEST.csv --out OUT_DIR [--scheduler ADDRESS] [--workers N]
                   [--threads-per-worker T] [--force] [every ``startnet run`` option]

Exit status: 0 when every row succeeded (computed or skipped as current), 1 when some failed
(each with its one-line error in summary.csv), 2 for bad input to the command (every bad row
is reported, one line each, before any work starts), 130 when interrupted (finished rows stay
finished; running again completes the rest).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from startnet.cycle.options import add_run_options, option_values
from startnet.errors import InputError, OutputError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def register(subparsers) -> None:
    batch = subparsers.add_parser(
        "batch", help="many cycles on a Dask cluster: resumable, with summary.csv and cohort.html",
        description="Runs startnet run for every row of MANIFEST.csv (or every sub-folder of INPUT_ROOT holding "
                    "DICOM files) on a Dask cluster; the run options apply to every row unless the row sets them.")
    batch.add_argument("source", metavar="MANIFEST.csv|INPUT_ROOT",
                       help="CSV with columns input_dir (required), name, segmentation, labels, patient_id, cycle, "
                            "reference_timepoint, calibration_cps_per_mbq, calibration, method, pvc (and any other "
                            "run option by its name); or a folder whose sub-folders each hold one cycle")
    batch.add_argument("--out", required=True, metavar="OUT_DIR",
                       help="output folder: OUT_DIR/<name>/ per row, summary.csv, cohort.html")
    batch.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a running Dask scheduler (e.g. tcp://host:8786); default: a local cluster")
    batch.add_argument("--workers", type=_positive_int, metavar="N",
                       help="worker processes of the local cluster (default: sized to the cores and memory)")
    batch.add_argument("--threads-per-worker", type=_positive_int, default=1, metavar="T",
                       help="numba/BLAS threads of each worker, which runs one cycle at a time (default 1)")
    batch.add_argument("--force", action="store_true", help="recompute rows whose outputs are current")
    add_run_options(batch)
    batch.set_defaults(handler=_batch, parser=batch)


def _batch(args) -> int:
    from startnet.batch.manifest import ManifestError, read_rows

    if args.scheduler and args.workers:
        raise InputError("--workers sizes the local cluster; with --scheduler the cluster has its own workers")
    try:
        rows = read_rows(args.source, option_values(args), args.parser)
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exc.exit_code
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return _run_rows(args, rows, out)


def _run_rows(args, rows, out: Path) -> int:
    from startnet.batch.cluster import open_cluster
    from startnet.batch.cohort import write_cohort
    from startnet.batch.runner import BatchProgress, run_tasks
    from startnet.batch.summary import write_summary
    from startnet.batch.task import RowTask

    tasks = [RowTask(row.name, row.input_dir, row.values, str(out.resolve()), args.force, args.threads_per_worker)
             for row in rows]
    handle = open_cluster(args.scheduler, args.workers, args.threads_per_worker)
    progress = BatchProgress(len(tasks), quiet=args.quiet)
    finished = {}
    try:
        if not args.quiet:
            print(f"[batch] {len(tasks)} cycles on {handle.description}", file=sys.stderr)
            if handle.dashboard:
                print(f"[batch] Dask dashboard: {handle.dashboard}", file=sys.stderr)
        outcomes = run_tasks(handle.client, tasks, progress, on_outcome=lambda o: finished.update({o.name: o}))
    except KeyboardInterrupt:
        done = [finished[t.name] for t in tasks if t.name in finished]
        write_summary(str(out), done)  # what finished so far; a new run completes the rest
        raise
    finally:
        handle.close()
    summary = write_summary(str(out), outcomes)
    cohort = write_cohort(str(out), outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    peaks = [o.peak_rss_mb for o in outcomes if o.status == "done" and o.peak_rss_mb]
    memory = f"; peak memory per worker {max(peaks):.0f} MB" if peaks else ""
    print(f"{len(outcomes) - failed - skipped} computed, {skipped} skipped (outputs current), {failed} failed"
          f"{memory}; {summary}, {cohort}")
    for outcome in outcomes:
        if outcome.status == "failed":
            print(f"failed: {outcome.name}: {outcome.error}", file=sys.stderr)
    return 1 if failed else 0
