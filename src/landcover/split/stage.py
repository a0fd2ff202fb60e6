"""Split stage: one implementation behind `landcover split`, the DVC stage and the flows.

Reads the dataset, assigns whole cities to train/val/test, writes the split CSV (one row per
tile) and the statistics JSON (DVC metrics).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from landcover.config import SPLITS, Params
from landcover.io_utils import atomic_path, atomic_write_json
from landcover.split.assign import assign_cities
from landcover.split.inputs import load_inputs
from landcover.split.quotas import city_counts
from landcover.split.stats import split_stats

SPLIT_COLUMNS = ("city_id", "tile_id", "split", "climate_zone")


@dataclass(frozen=True)
class SplitResult:
    rows: list[tuple[str, str, str, str]]  # city_id, tile_id, split, climate_zone; sorted
    stats: dict
    out: Path
    stats_path: Path

    def city_splits(self) -> dict[str, str]:
        return {c: s for c, _, s, _ in self.rows}


def write_split_csv(out: Path, rows: Iterable[tuple[str, str, str, str]]) -> None:
    with atomic_path(Path(out)) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(SPLIT_COLUMNS)
        w.writerows(rows)


def run_split(
    params: Params, data_root: Path, out: Path, stats_path: Path, valid_tiles: Path | None = None
) -> SplitResult:
    """The split stage: read the dataset, assign whole cities, write the split CSV and the stats."""
    p = params.split
    inputs = load_inputs(Path(data_root), valid_tiles)
    table = inputs.table
    counts = city_counts(len(table), p.reference_cities)
    assignment = assign_cities(
        table, counts, p.tile_fractions, p.seed, p.search_iterations, p.balance_weights
    )
    split_of = {c: SPLITS[k] for c, k in zip(table.city_ids, assignment, strict=True)}
    rows = [(c, t, split_of[c], inputs.zone_of[c]) for c, t in inputs.tiles]
    stats = split_stats(table, assignment, p.tile_fractions, p.seed)
    stats.update(
        class_source=inputs.class_source,
        excluded_tiles=inputs.excluded_tiles,
        skipped_entries=inputs.skipped_entries,
        cities_without_tiles=len(inputs.cities_without_tiles),
        search_iterations=p.search_iterations,
    )
    write_split_csv(Path(out), rows)
    atomic_write_json(Path(stats_path), stats)
    return SplitResult(rows=rows, stats=stats, out=Path(out), stats_path=Path(stats_path))
