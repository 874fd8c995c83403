"""The Dask cluster a batch runs on: a local one sized to the machine, or an existing scheduler.

Local cluster: worker processes (not threads: the cycle steps hold the GIL in places and a
crashing or memory-hungry cycle must not take the others down), each running one cycle at a
time with ``threads`` numba/BLAS/OpenMP threads. Workers = min(usable cores // threads,
memory // MEMORY_PER_WORKER_GB), at least 1. Each worker's memory limit is its share of the
machine's memory; the nanny restarts a worker that exceeds it.

A task whose worker dies (killed, out of memory) is rescheduled on another worker by the
scheduler; ``distributed.scheduler.allowed-failures`` = 2 makes a third death of the same task
final (Dask raises KilledWorker, the row is reported as failed). An existing scheduler
(``--scheduler tcp://host:8786``, e.g. from dask-jobqueue on Slurm) keeps its own settings; see
the README for starting one with ``allowed-failures: 2`` and the workers' thread variables.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from startnet.errors import InputError

ALLOWED_WORKER_DEATHS = 2  # a task is retried at most twice after its worker died
MEMORY_PER_WORKER_GB = 4.0  # a clinical cycle (CT 512x512x300, 4 time points) peaks below this
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class ClusterHandle:
    client: Any
    cluster: Any  # None for an external scheduler (not ours to stop)
    description: str
    dashboard: Optional[str]
    workers: int

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


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


def require_dask() -> None:
    if importlib.util.find_spec("distributed") is None:
        raise InputError("startnet batch needs Dask: pip install 'startnet[batch]' "
                         "(or pip install 'dask[distributed]')")


def open_cluster(scheduler: Optional[str], workers: Optional[int], threads: int) -> ClusterHandle:
    """Connect to ``scheduler`` or start a local cluster; the caller closes the handle."""
    require_dask()
    import dask
    from distributed import Client, LocalCluster

    if not logging.getLogger().isEnabledFor(logging.INFO):  # Dask's own INFO lines only with --verbose
        logging.getLogger("distributed").setLevel(logging.WARNING)

    if scheduler:
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
    environment = dict(thread_environment(threads), DASK_LOGGING__DISTRIBUTED=logging.getLevelName(
        logging.getLogger("distributed").getEffectiveLevel()).lower())
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS,
                          "distributed.nanny.pre-spawn-environ": dict(
                              dask.config.get("distributed.nanny.pre-spawn-environ", {}), **environment)}):
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, env=environment,
                               dashboard_address=":0", silence_logs=False)
        client = Client(cluster)
    dashboard = client.dashboard_link if with_dashboard else None
    description = f"local Dask cluster: {count} worker process(es) x {threads} thread(s)"
    return ClusterHandle(client, cluster, description, dashboard, count)
