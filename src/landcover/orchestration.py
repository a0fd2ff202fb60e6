"""How the Prefect flows run a stage's per-tile work: one Prefect task per tile, on threads, or on a
Dask cluster when an address is configured, so one flow runs on a laptop and fans out over a cluster
with only a params change.

What a Dask worker runs must be importable there, and only this package is installed on the workers:
the task (`run_tile`) lives here, not in `flows/` (pickled by reference, a task defined in a flow
script is `flows.batch_inference.predict_tile_task` or `runners.prefect_map`, which no worker can
import). The per-tile worker object is pickled with each task, so it must stay small: the batch
predictor drops its model when pickled and loads it once per worker process (`inference.stage`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped

from landcover.parallel import MapFn


@task(name="tile", cache_policy=NO_CACHE)
def run_tile(tile: Any, worker: Callable[[Any], Any]) -> Any:
    """One tile of a stage: `worker(tile)` (the stage's per-tile callable)."""
    return worker(tile)


def task_runner(workers: int, dask_address: str | None = None) -> TaskRunner:
    """A Dask runner connected to `dask_address` when given, else a thread pool of `workers`."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ThreadPoolTaskRunner(max_workers=max(1, workers))


def prefect_map(name: str, workers: int, dask_address: str | None = None, retries: int = 0,
                retry_delay_s: float = 5) -> MapFn:
    """A stage's `map_fn(worker, tiles)`: one Prefect task per tile (named `<name>-<city>-<tile>` in the
    UI), returning each tile's result or its exception (the stage reports failed tiles by name)."""
    tile_task = run_tile.with_options(name=name, task_run_name=name + "-{tile.city_id}-{tile.tile_id}",
                                      retries=retries, retry_delay_seconds=retry_delay_s)

    def run(worker: Callable[[Any], Any], tiles: Sequence[Any]) -> list[Any]:
        with task_runner(workers, dask_address) as runner:
            futures = runner.map(tile_task, {"tile": list(tiles), "worker": unmapped(worker)})
            wait(futures)
        return [f.result() if f.state.is_completed() else f.state.result(raise_on_failure=False) for f in futures]

    return run
