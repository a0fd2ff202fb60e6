"""Progress shown while long work runs: a bar per item on a terminal, one line per step otherwise
(logs of DVC, Prefect workers and CI stay readable)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def item_bars(unit: str = "step") -> Iterator[Callable[[str, int, int, str], None]]:
    """Yields `update(item, done, total, what)`: one bar per item (a tile), advanced per step."""
    if not sys.stderr.isatty():
        def update(item: str, done: int, total: int, what: str) -> None:
            print(f"{item} [{done}/{total}] {what}", file=sys.stderr, flush=True)

        yield update
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, int] = {}
    columns = (TextColumn("{task.fields[item]}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit + "s"),
               TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, transient=False) as bars:
        def update(item: str, done: int, total: int, what: str) -> None:
            if item not in tasks:
                tasks[item] = bars.add_task(what, total=total, item=item)
            bars.update(tasks[item], completed=done, total=total, description=what)

        yield update
