"""Task-runner choice shared by the flows: threads locally, Dask when an address is configured.

Flows call `task_runner(workers, dask_address)` at run time (the address comes from params.yaml),
enter it as a context manager and `.map` their tasks on it, so one flow definition runs on a
laptop and fans out over a Dask cluster with only a params change.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect.futures import wait
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped


def task_runner(workers: int, dask_address: str | None = None) -> TaskRunner:
    """A Dask runner connected to `dask_address` when given, else a thread pool of `workers`."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ThreadPoolTaskRunner(max_workers=max(1, workers))


def prefect_map(task_fn, workers: int, dask_address: str | None = None) -> Callable:
    """A stage's `map_fn(worker, tiles)` that runs `task_fn(tile, worker)` as one Prefect task per tile
    and returns each tile's result, or its exception (the stage reports failed tiles by name)."""

    def run(worker: Callable, tiles: list) -> list:
        with task_runner(workers, dask_address) as runner:
            futures = runner.map(task_fn, {"tile": tiles, "worker": unmapped(worker)})
            wait(futures)
        return [f.result() if f.state.is_completed() else f.state.result(raise_on_failure=False) for f in futures]

    return run
