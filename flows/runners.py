"""Task-runner choice shared by the flows: threads locally, Dask when an address is configured.

Flows call `task_runner(workers, dask_address)` at run time (the address comes from params.yaml),
enter it as a context manager and `.map` their tasks on it, so one flow definition runs on a
laptop and fans out over a Dask cluster with only a params change.
"""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner


def task_runner(workers: int, dask_address: str | None = None) -> TaskRunner:
    """A Dask runner connected to `dask_address` when given, else a thread pool of `workers`."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ThreadPoolTaskRunner(max_workers=max(1, workers))
