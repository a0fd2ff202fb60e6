"""The validate stage: one implementation for `landcover validate`, the DVC stage and the flow.

    plan_validation(data_root)              cities.csv + tile folders (nothing read yet)
    inspect_tile(tile, cities, params)      one tile's raster facts: the unit runners map
    summarise_validation(plan, rows, ...)   GE checkpoint, per-tile status, outputs, Data Docs
    run_validation(params, data_root, out_dir, ...) all three, mapping inspect_tile over a thread pool

Outputs under `out_dir` (each written atomically, rows sorted, no timestamps):
report.csv, report.json, valid_tiles.csv, quarantine.csv, summary.json, metadata.csv and
data_docs/ (index.html). Raw data is only ever opened for reading.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from landcover.config import Params
from landcover.dataset import (
    BadEntry,
    City,
    DataContractError,
    TileRef,
    discover_tiles,
    read_cities,
    tiles_dir,
)
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_write_json, atomic_write_text
from landcover.parallel import MapFn, thread_map
from landcover.validation.metadata import bad_entry_row, columns, tile_row
from landcover.validation.offline import make_offline
from landcover.validation.suite import REASONS, Failure, failures_by_tile, run_checkpoint

REPORT_CSV = "report.csv"
REPORT_JSON = "report.json"
VALID_TILES = "valid_tiles.csv"
QUARANTINE = "quarantine.csv"
SUMMARY = "summary.json"
METADATA = "metadata.csv"
DATA_DOCS = "data_docs"
log = logging.getLogger(__name__)

PASSED, QUARANTINED = "passed", "quarantined"



class QuarantineThresholdError(LandcoverError):
    """More tiles quarantined than validate.max_quarantined_fraction allows."""


@dataclass(frozen=True)
class ValidationPlan:
    data_root: Path
    tiles: list[TileRef]
    bad_entries: list[BadEntry]
    cities: dict[str, City]


@dataclass(frozen=True)
class ValidationResult:
    out_dir: Path
    rows: list[dict[str, Any]]  # report rows, sorted by city_id, tile_id
    summary: dict[str, Any]  # what summary.json holds
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def tiles_checked(self) -> int:
        return self.summary["tiles_checked"]

    @property
    def tiles_passed(self) -> int:
        return self.summary["tiles_passed"]

    @property
    def tiles_quarantined(self) -> int:
        return self.summary["tiles_quarantined"]

    @property
    def quarantined_fraction(self) -> float:
        return self.summary["quarantined_fraction"]

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        return self.summary["quarantined_by_reason"]

    @property
    def exceeds_threshold(self) -> bool:
        return not self.summary["within_threshold"]

    @property
    def quarantined(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == QUARANTINED]

    @property
    def valid_tiles(self) -> list[tuple[str, str]]:
        return [(r["city_id"], r["tile_id"]) for r in self.rows if r["status"] == PASSED]

    def raise_for_threshold(self) -> None:
        if self.exceeds_threshold:
            s = self.summary
            raise QuarantineThresholdError(
                f"{s['tiles_quarantined']} of {s['tiles_checked']} tiles quarantined "
                f"({s['quarantined_fraction']:.1%}), above validate.max_quarantined_fraction "
                f"({s['max_quarantined_fraction']:.1%}); see {self.out_dir / QUARANTINE}"
            )


def plan_validation(data_root: Path) -> ValidationPlan:
    """Read cities.csv and find the tile folders; a broken cities.csv is a clear error."""
    root = Path(data_root)
    cities = read_cities(root / "cities.csv")
    tiles, bad = discover_tiles(root)
    if not tiles and not bad:
        raise DataContractError(f"{tiles_dir(root)}: no tile folders to validate")
    return ValidationPlan(root, tiles, bad, cities)


def inspect_tile(tile: TileRef, cities: dict[str, City], params: Params) -> dict[str, Any]:
    """One tile's row for the suite (pure: reads the tile's files, writes nothing)."""
    row = tile_row(tile, tuple(params.data.seasons), params.validation.require_label)
    city = cities.get(tile.city_id)
    row["climate_zone"] = city.climate_zone if city else None
    return row


def _replace_dir(new: Path, target: Path) -> None:
    """Swap a finished folder into place (the old one is removed after the swap)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _report_rows(table_rows: list[dict], failures: dict[str, list[Failure]]) -> list[dict[str, Any]]:
    rows = []
    for t in table_rows:
        found = sorted(failures.get(t["tile_key"], []), key=lambda f: (f.file, f.column, f.reason))
        rows.append({
            "city_id": t["city_id"],
            "tile_id": t["tile_id"],
            "status": QUARANTINED if found else PASSED,
            "reasons": sorted({f.reason for f in found}),
            "failures": [f.as_dict() for f in found],
        })
    return sorted(rows, key=lambda r: (r["city_id"], r["tile_id"]))


def _summary(rows: list[dict], max_fraction: float) -> dict[str, Any]:
    checked = len(rows)
    quarantined = sum(r["status"] == QUARANTINED for r in rows)
    fraction = quarantined / checked if checked else 0.0
    by_reason = dict.fromkeys(REASONS, 0)
    for r in rows:
        for reason in r["reasons"]:
            by_reason[reason] += 1
    return {
        "tiles_checked": checked,
        "tiles_passed": checked - quarantined,
        "tiles_quarantined": quarantined,
        "quarantined_fraction": round(fraction, 6),
        "max_quarantined_fraction": max_fraction,
        "within_threshold": fraction <= max_fraction,
        "quarantined_by_reason": by_reason,
    }


def _write_outputs(out_dir: Path, table, rows: list[dict], summary: dict) -> dict[str, Path]:
    paths = {name: out_dir / name for name in (REPORT_CSV, REPORT_JSON, VALID_TILES, QUARANTINE,
                                               METADATA, SUMMARY)}
    atomic_write_text(paths[METADATA], table.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(paths[REPORT_CSV], _csv_text(
        ("city_id", "tile_id", "status", "reasons", "failures"),
        ((r["city_id"], r["tile_id"], r["status"], ";".join(r["reasons"]),
          "; ".join(str(Failure(**f)) for f in r["failures"])) for r in rows),
    ))
    atomic_write_text(paths[REPORT_JSON], json.dumps(rows, indent=2, sort_keys=True) + "\n")
    atomic_write_text(paths[VALID_TILES], _csv_text(
        ("city_id", "tile_id"), ((r["city_id"], r["tile_id"]) for r in rows if r["status"] == PASSED)
    ))
    atomic_write_text(paths[QUARANTINE], _csv_text(
        ("city_id", "tile_id", "reasons", "details"),
        ((r["city_id"], r["tile_id"], ";".join(r["reasons"]),
          "; ".join(str(Failure(**f)) for f in r["failures"])) for r in rows if r["status"] == QUARANTINED),
    ))
    atomic_write_json(paths[SUMMARY], summary)  # last: its presence means the rest is there
    return paths


def summarise_validation(
    plan: ValidationPlan, tile_rows: Iterable[dict[str, Any]], out_dir: Path, params: Params
) -> ValidationResult:
    """Run the GE checkpoint over the inspected tiles and write every output."""
    import pandas as pd

    v = params.validation
    seasons = tuple(params.data.seasons)
    out_dir = Path(out_dir)
    base = tiles_dir(plan.data_root)
    rows = list(tile_rows) + [bad_entry_row(e, base, seasons) for e in plan.bad_entries]
    table = pd.DataFrame(rows, columns=columns(seasons))
    table = table.sort_values("tile_key", kind="stable").reset_index(drop=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    docs_tmp = Path(tempfile.mkdtemp(prefix=f".{DATA_DOCS}.", dir=out_dir))
    docs_tmp.chmod(0o755)  # mkdtemp makes it private; Data Docs are meant to be served and shared
    try:
        result = run_checkpoint(table, list(plan.cities), v, docs_tmp, seasons)
        failures = failures_by_tile(result)
        for url in make_offline(docs_tmp):  # the pages open on a machine without internet
            log.warning("Data Docs: no vendored copy of %s; that page needs internet for it", url)
        _replace_dir(docs_tmp, out_dir / DATA_DOCS)
    finally:
        shutil.rmtree(docs_tmp, ignore_errors=True)

    report = _report_rows(table.to_dict("records"), failures)
    if result.success != (not failures):  # GE's verdict and the per-tile view must agree
        raise LandcoverError("Great Expectations result and per-tile failures disagree")
    summary = _summary(report, v.max_quarantined_fraction)
    paths = _write_outputs(out_dir, table, report, summary)
    paths["data_docs"] = out_dir / DATA_DOCS / "index.html"
    return ValidationResult(out_dir, report, summary, paths)


def run_validation(
    params: Params, data_root: Path, out_dir: Path, map_fn: MapFn | None = None
) -> ValidationResult:
    """The whole stage, behind every door. `map_fn(fn, tiles)` runs `fn` over the tiles (default: a
    thread pool; the validate-tiles flow passes Prefect tasks). Inspecting a tile reports what it
    finds as a row and does not raise; an exception in its place is a bug and stops the stage."""
    plan = plan_validation(data_root)
    map_fn = map_fn or thread_map(params.validation.workers)
    rows = list(map_fn(partial(inspect_tile, cities=plan.cities, params=params), plan.tiles))
    for row in rows:
        if isinstance(row, Exception):
            raise row
    return summarise_validation(plan, rows, out_dir, params)
