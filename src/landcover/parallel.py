"""Per-tile work on threads (GDAL, numpy and torch release the GIL), shared by every stage's CLI
and DVC path; the Prefect flows pass their own task-runner map instead."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
# how a stage runs its per-tile work: `map_fn(worker, tiles)` yields each tile's result, or its
# exception, in order (threads here; a Prefect task runner in the flows)
MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]]


def thread_map(workers: int, catch_errors: bool = False
               ) -> Callable[[Callable[[T], R], Sequence[T]], Iterator[R | Exception]]:
    """A `map_fn(fn, items)` yielding results in order as they finish. With `catch_errors` an
    item's exception is yielded in its place (the other items go on) instead of raised."""

    def run(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R | Exception]:
        def call(item: T) -> R | Exception:
            if not catch_errors:
                return fn(item)
            try:
                return fn(item)
            except Exception as exc:  # noqa: BLE001 - reported per item by the caller
                return exc

        if workers <= 1 or len(items) <= 1:
            yield from map(call, items)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(call, items)

    return run


def dask_map(address: str) -> Callable[[Callable[[T], R], Sequence[T]], Iterator[R | Exception]]:
    """A `map_fn(fn, items)` running one task per item on the Dask cluster at `address` (workers need
    this package installed), yielding results in order, an item's exception in its place."""

    def run(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R | Exception]:
        from distributed import Client

        with Client(address) as client:
            futures = client.map(fn, list(items), pure=False)
            for future in futures:
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - reported per item by the caller
                    yield exc

    return run


def lower_thread_priority(steps: int) -> None:
    """Run the calling thread `steps` nice levels below the process (at most at 19); idempotent, so
    a thread started by an already lowered one (which inherits its value) ends at the same level.

    For work beside a CPU model (reading, blending, writing, hashing): torch's thread pool waits
    for its slowest thread at every operation, so a thread that preempts one of its workers stalls
    them all, while a lower-priority one mostly fills the pool's idle gaps (figure 1 of
    docs/performance.md). A few levels, not the lowest: the work must still keep up when the model
    waits for it, also on a loaded machine. Per thread on Linux (the nice value of a thread id); a
    no-op elsewhere, and where it is refused."""
    if steps <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + steps)  # the process: the model's level
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError:
        pass


def background_executor(name: str, nice: int) -> ThreadPoolExecutor:
    """One thread for work beside the model (writing rows, hashing inputs), `nice` levels below it."""
    return ThreadPoolExecutor(1, thread_name_prefix=name, initializer=lower_thread_priority, initargs=(nice,))


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
