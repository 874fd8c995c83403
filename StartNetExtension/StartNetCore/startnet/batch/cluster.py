"""The Dask cluster a batch runs on: a local one sized to the machine, or an existing scheduler.

Local cluster: worker processes (not threads: the cycle steps hold the GIL in places and a
crashing or memory-hungry cycle must not take the others down), each running one cycle at a
time with ``threads`` numba/BLAS/OpenMP/ITK threads. Workers = min(usable cores // threads,
memory // MEMORY_PER_WORKER_GB), at least 1. Each worker's memory limit is its share of the
machine's memory; the nanny restarts a worker that exceeds it.

Workers start from a forkserver where the platform has one (Linux, macOS; spawn on Windows): a
worker that Dask has closed then ends with ``os._exit`` instead of finalising an interpreter that
holds VTK, ITK, numba and a cycle's arrays, which took 1.5 s per worker on the small phantom (the
outputs are complete before: every row's files are closed and moved into place by the task). As
Dask documents for that start method, the thread variables must be in the environment before the
forkserver starts (it imports numpy, whose BLAS reads them once); ``open_cluster`` sets them in this
process for the cluster's lifetime (a later cluster of the same process reuses the forkserver and its
BLAS threads), and :func:`startnet.batch.task.set_threads` sets numba's and ITK's threads in each
task (numba's pool is left at all cores in the forkserver, and each task uses ``threads`` of it).
The forkserver imports what a row needs (WORKER_MODULES: VTK and MRML of slicer-core, SimpleITK,
numba, matplotlib, highdicom, startnet's cycle steps) while this process starts the scheduler, so
the workers forked from it start with them imported and share their memory pages; with spawn each
worker imports them during its first row.

A task whose worker dies (killed, out of memory) is rescheduled on another worker by the
scheduler; ``distributed.scheduler.allowed-failures`` = 2 makes a third death of the same task
final (Dask raises KilledWorker, the row is reported as failed). An existing scheduler
(``--scheduler tcp://host:8786``, e.g. from dask-jobqueue on Slurm) keeps its own settings; see
the README for starting one with ``allowed-failures: 2`` and the workers' thread variables.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from startnet.errors import InputError

ALLOWED_WORKER_DEATHS = 2  # a task is retried at most twice after its worker died
# Dask's housekeeping intervals for the local cluster, from its defaults (100 ms, 500 ms, 20 ms): a row runs
# for tens of seconds and its memory grows over seconds, so checking each worker's memory twice a second
# (the nanny still restarts one past its limit) and sampling system load and event-loop ticks less often
# loses nothing, and returns to the rows the CPU the scheduler's process spent on it (2.7 -> 2.2 CPU-s in a
# 4-cycle run on 2 cores, where that process shares the cores with the workers).
HOUSEKEEPING = {
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "500ms",
}
MEMORY_PER_WORKER_GB = 4.0  # a clinical cycle (CT 512x512x300, 4 time points) peaks below this
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")  # ITK: SimpleITK's registration, resampling


@dataclass
class ClusterHandle:
    client: Any
    cluster: Any  # None for an external scheduler (not ours to stop)
    description: str
    dashboard: Optional[str]
    workers: int
    # the Dask configuration and environment the local cluster runs with, undone by close(): a worker
    # the nanny restarts after a death starts with the same settings as the first ones
    settings: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.close()
            finally:
                self.settings.close()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(threads: int) -> int:
    """Worker processes for this machine: limited by cores and by memory."""
    import psutil

    by_cores = usable_cores() // max(1, threads)
    by_memory = int(psutil.virtual_memory().total / 1024 ** 3 // MEMORY_PER_WORKER_GB)
    return max(1, min(by_cores, by_memory))


def thread_environment(threads: int) -> Dict[str, str]:
    return {variable: str(threads) for variable in THREAD_VARIABLES}


# What a row imports (startnet.cycle.run and what it imports when it runs); imported once by the forkserver.
# A name that fails to import is skipped by the forkserver (the worker then imports what it needs itself).
WORKER_MODULES = (
    "distributed", "numpy", "scipy.stats", "SimpleITK", "numba", "pydicom", "highdicom", "matplotlib.figure",
    "matplotlib.backends.backend_agg", "matplotlib.backends.backend_pdf", "slicer", "vtk",
    "startnet.batch.task", "startnet.cycle.run", "startnet.cycle.outputs", "startnet.cycle.quantify",
    "startnet.cycle.marrow", "startnet.cycle.marrow_voi", "startnet.cycle.report_input",
    "startnet.cycle.structure_maps", "startnet.calibration.patient_psf", "startnet.dosimetry.bed",
    "startnet.dosimetry.engines", "startnet.dosimetry.kernel_build", "startnet.dosimetry.uncertainty",
    "startnet.kinetics.voxel", "startnet.segmentation.recovery", "startnet.mrml.cycle_scene",
    "startnet.report.render", "startnet.report.html", "startnet.report.pdf", "startnet.report.dicom_seg",
    "startnet.report.rtdose",
)


def worker_start_method() -> str:
    """``forkserver`` where the platform offers it, else ``spawn`` (Windows): see the module text."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def start_worker_server() -> None:
    """Start the forkserver the local workers are forked from, importing WORKER_MODULES (forkserver only).

    Returns at once: the forkserver imports in its own process, while this one goes on starting the
    scheduler; the first worker's fork waits until the imports are done. A forkserver already running
    in this process (an earlier cluster) is reused as it is."""
    if worker_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(WORKER_MODULES))
    forkserver.ensure_running()


def pre_spawn_environ() -> Dict[str, Any]:
    """Dask's ``distributed.nanny.pre-spawn-environ`` (e.g. MALLOC_TRIM_THRESHOLD_), without importing
    distributed when it is not imported yet (the forkserver is started first, to import on another core
    while this process imports distributed): its packaged defaults read from distributed.yaml, under the
    user's own Dask configuration (which ``import dask`` has read)."""
    import dask

    key = "distributed.nanny.pre-spawn-environ"
    if "distributed" in sys.modules:
        return dict(dask.config.get(key, {}))
    defaults: Dict[str, Any] = {}
    spec = importlib.util.find_spec("distributed")
    if spec is not None and spec.origin:
        try:
            import yaml

            packaged = yaml.safe_load((Path(spec.origin).parent / "distributed.yaml").read_text())
            defaults = dict(packaged["distributed"]["nanny"]["pre-spawn-environ"] or {})
        except (OSError, KeyError, TypeError, ImportError, ValueError):  # a layout this code does not know
            defaults = {}
    return dict(defaults, **dask.config.get(key, {}))


def while_workers_start() -> None:
    """What this process imports for the end of the batch (summary and cohort.html plots), done while the
    forkserver imports the workers' modules on another core: the workers' start waits for those anyway."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


@contextlib.contextmanager
def environment_set(values: Dict[str, Optional[str]]):
    """``os.environ`` with ``values`` for the block (None: the variable unset), restored after."""
    before = {name: os.environ.get(name) for name in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(before)


def _set_environment(values: Dict[str, Optional[str]]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def require_dask() -> None:
    if importlib.util.find_spec("distributed") is None:
        raise InputError("startnet batch needs Dask: pip install 'startnet[batch]' "
                         "(or pip install 'dask[distributed]')")


def _dask_log_level() -> str:
    """Dask's own INFO lines only with --verbose: the level for the "distributed" logger, set and returned."""
    level = "INFO" if logging.getLogger().isEnabledFor(logging.INFO) else "WARNING"
    logging.getLogger("distributed").setLevel(level)
    return level


def open_cluster(scheduler: Optional[str], workers: Optional[int], threads: int) -> ClusterHandle:
    """Connect to ``scheduler`` or start a local cluster; the caller closes the handle."""
    require_dask()
    import dask

    if scheduler:
        from distributed import Client

        _dask_log_level()
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        info = client.scheduler_info()
        count = len(info.get("workers", {}))
        dashboard = client.dashboard_link if "dashboard" in info.get("services", {}) else None
        return ClusterHandle(client, None, f"scheduler {scheduler} ({count} workers now)", dashboard, count)

    count = workers or default_workers(threads)
    with_dashboard = importlib.util.find_spec("bokeh") is not None
    environment = dict(thread_environment(threads), DASK_LOGGING__DISTRIBUTED=_dask_log_level().lower())
    settings = contextlib.ExitStack()
    try:
        # before the forkserver starts: it and every worker forked from it keep this environment. Not numba's
        # pool size: the forkserver imports numba, which would fix it for every later cluster of this process;
        # numba's default (all cores) is capped per task by set_threads instead.
        forkserver_environment = {name: str(value) for name, value in dict(pre_spawn_environ(), **environment).items()}
        settings.enter_context(environment_set(dict(forkserver_environment, NUMBA_NUM_THREADS=None)))
        start_worker_server()
        while_workers_start()
        from distributed import Client, LocalCluster

        _dask_log_level()  # importing distributed set its logger's level from Dask's configuration
        # after importing distributed: leaving a dask.config.set block entered before it removed every
        # default distributed had added meanwhile (a second cluster in this process then failed)
        settings.enter_context(dask.config.set({
            **HOUSEKEEPING,
            "distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS,
            "distributed.worker.multiprocessing-method": worker_start_method(),
            "distributed.nanny.pre-spawn-environ": dict(
                dask.config.get("distributed.nanny.pre-spawn-environ", {}), **environment)}))
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, env=environment,
                               dashboard_address=":0", silence_logs=False)
        client = Client(cluster)
    except BaseException:
        settings.close()
        raise
    dashboard = client.dashboard_link if with_dashboard else None
    description = f"local Dask cluster: {count} worker process(es) x {threads} thread(s)"
    return ClusterHandle(client, cluster, description, dashboard, count, settings)
