"""City-grouped, stratified train/val/test split (BRIEF section 1, stage 2).

Whole cities go to one split, never single tiles: neighbouring tiles of a city share landscape,
light and season, so a tile-level split leaks. The split is built in two steps:

1. **Construction.** City counts per split come from the reference split (425/123/201 of 749)
   by largest-remainder rounding, at least one city each. Each climate zone's cities are then
   apportioned to the splits in proportion to those counts (a controlled rounding of
   zone x split quotas whose row and column sums are exact), so every split sees every zone in
   its share of cities by construction. Within a zone, cities are dealt largest first to the
   split furthest below its tile target, so tile shares and zone shares by tiles start balanced.
2. **Search.** Seeded annealing over city swaps between splits (city counts never change; zone
   city counts stay within their quota rounding), evaluating batches of random swaps at once and
   taking the best: the objective is the weighted largest deviation of tile share (relative to
   its target), climate-zone shares by tiles and class pixel shares of each split from the
   whole, plus a smaller root-mean-square term that breaks ties.

The balance measures reported (and written as DVC metrics) are the largest absolute share
differences between any split and the whole dataset. See docs/split.md.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from landcover.classes import CLASSES, NUM_CLASSES
from landcover.config import SPLITS, Params
from landcover.dataset import (
    CLIMATE_ZONES,
    DataContractError,
    TileRef,
    discover_tiles,
    read_cities,
    read_manifest,
    tile_ref,
)
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_path, atomic_write_json

CITIES_FILE = "cities.csv"
MANIFEST_FILE = "tiles.csv"
CLASS_MIX_FILE = "class_mix.csv"
SPLIT_COLUMNS = ("city_id", "tile_id", "split", "climate_zone")
CLASS_KEYS = tuple(c.name.lower().replace(" ", "_") for c in CLASSES)
BATCH = 32  # candidate swaps evaluated together per search step
T_START, T_END = 3e-3, 1e-5  # annealing temperatures (objective units: share gaps)
DEFAULT_WEIGHTS = {"tiles": 1.0, "zones": 1.0, "classes": 1.0}


class SplitError(LandcoverError, ValueError):
    """A split request that cannot be met (too few cities, bad ratios, unknown tiles)."""


# ------------------------------------------------------------------ counts
def city_counts(n: int, reference: Mapping[str, int]) -> dict[str, int]:
    """Cities per split: n x reference proportions, largest remainder, >= 1 each (exact integers)."""
    if set(reference) != set(SPLITS) or any(int(reference[s]) <= 0 for s in SPLITS):
        raise SplitError(
            f"split.reference_cities needs positive counts for {SPLITS}, got {dict(reference)}"
        )
    if n < len(SPLITS):
        raise SplitError(
            f"{n} cit{'y' if n == 1 else 'ies'} with tiles cannot fill {len(SPLITS)} splits "
            f"({'/'.join(SPLITS)} need at least one city each)"
        )
    ref = [int(reference[s]) for s in SPLITS]
    total = sum(ref)
    base, rem = zip(*(divmod(n * r, total) for r in ref), strict=True)
    counts = list(base)
    order = sorted(range(len(SPLITS)), key=lambda k: (-rem[k], k))
    for k in order[: n - sum(counts)]:
        counts[k] += 1
    while min(counts) == 0:  # small n: take from the largest split
        counts[counts.index(max(counts))] -= 1
        counts[counts.index(0)] += 1
    return dict(zip(SPLITS, counts, strict=True))


def zone_quotas(zone_sizes: np.ndarray, split_sizes: np.ndarray) -> np.ndarray:
    """Integer zone x split city counts with exact row/column sums, each within 1 of its quota.

    Controlled rounding of quota n_z * n_k / n: floors, then +1 on cells with a fractional part,
    largest remainders first, completed by augmenting paths (a bipartite b-matching, always
    feasible because the fractional parts themselves are a feasible fractional solution).
    """
    zone_sizes = np.asarray(zone_sizes, dtype=np.int64)
    split_sizes = np.asarray(split_sizes, dtype=np.int64)
    n = int(zone_sizes.sum())
    if n != int(split_sizes.sum()):
        raise ValueError("zone and split sizes must have the same total")
    base, rem = np.divmod(np.outer(zone_sizes, split_sizes), n)
    allowed = rem > 0
    extra = np.zeros_like(base)
    row_def = zone_sizes - base.sum(axis=1)
    col_def = split_sizes - base.sum(axis=0)
    for flat in np.argsort(-rem, axis=None, kind="stable"):
        z, k = divmod(int(flat), base.shape[1])
        if allowed[z, k] and row_def[z] > 0 and col_def[k] > 0:
            extra[z, k], row_def[z], col_def[k] = 1, row_def[z] - 1, col_def[k] - 1
    while row_def.any():
        z0 = int(np.flatnonzero(row_def)[0])
        path = _augmenting_path(z0, allowed, extra, col_def)
        for step, (z, k) in enumerate(path):
            extra[z, k] += 1 if step % 2 == 0 else -1
        row_def[z0] -= 1
        col_def[path[-1][1]] -= 1
    return base + extra


def _augmenting_path(
    z0: int, allowed: np.ndarray, extra: np.ndarray, col_def: np.ndarray
) -> list[tuple[int, int]]:
    """Cells z0->k1, z1<-k1, z1->k2, ... ending at a column with a deficit (BFS)."""
    parent: dict[int, tuple[int, int]] = {}  # column -> (row it was reached from, previous column)
    frontier, seen_rows = [(z0, -1)], {z0}
    while frontier:
        nxt = []
        for z, came_from in frontier:
            for k in np.flatnonzero(allowed[z] & (extra[z] == 0)):
                k = int(k)
                if k in parent:
                    continue
                parent[k] = (z, came_from)
                if col_def[k] > 0:
                    path, col = [], k
                    while col != -1:
                        row, prev = parent[col]
                        path.append((row, col))
                        if prev != -1:
                            path.append((row, prev))
                        col = prev
                    return path[::-1]
                for z2 in np.flatnonzero(extra[:, k] == 1):
                    if int(z2) not in seen_rows:
                        seen_rows.add(int(z2))
                        nxt.append((int(z2), k))
        frontier = nxt
    raise AssertionError("no controlled rounding found")  # cannot happen for consistent margins


# ------------------------------------------------------------------ city table
@dataclass(frozen=True)
class CityTable:
    """Per-city inputs of the assignment, cities sorted by id."""

    city_ids: tuple[str, ...]
    zone_names: tuple[str, ...]
    zones: np.ndarray  # (C,) index into zone_names
    tiles: np.ndarray  # (C,) tiles per city
    class_pixels: np.ndarray  # (C, 10) labelled pixels (or tile-equivalents) per class

    def __len__(self) -> int:
        return len(self.city_ids)


class _Objective:
    """Deviation of split sums from the whole; works on (..., 3, D) arrays of split sums."""

    def __init__(self, table: CityTable, fractions: np.ndarray, weights: Mapping[str, float]):
        nz = len(table.zone_names)
        onehot = np.zeros((len(table), nz))
        onehot[np.arange(len(table)), table.zones] = 1.0
        t = table.tiles.astype(float)
        # features: [cities, tiles, zone cities (nz), zone tiles (nz), class pixels (10)]
        self.features = np.hstack(
            [
                np.ones((len(table), 1)),
                t[:, None],
                onehot,
                onehot * t[:, None],
                table.class_pixels.astype(float),
            ]
        )
        self.zc = slice(2, 2 + nz)
        self.zt = slice(2 + nz, 2 + 2 * nz)
        self.cl = slice(2 + 2 * nz, 2 + 2 * nz + NUM_CLASSES)
        whole = self.features.sum(axis=0)
        self.total_tiles = whole[1]
        self.fractions = fractions
        self.whole_zone_c = whole[self.zc] / whole[0]
        self.whole_zone_t = whole[self.zt] / whole[1]
        total_px = whole[self.cl].sum()
        self.has_classes = total_px > 0
        self.whole_class = whole[self.cl] / total_px if self.has_classes else np.zeros(NUM_CLASSES)
        self.w = {**DEFAULT_WEIGHTS, **weights}

    def sums(self, assignment: np.ndarray) -> np.ndarray:
        out = np.zeros((len(SPLITS), self.features.shape[1]))
        np.add.at(out, assignment, self.features)
        return out

    def deviations(self, s: np.ndarray) -> dict[str, np.ndarray]:
        tiles = s[..., 1]
        safe_t = np.maximum(tiles, 1e-12)[..., None]
        dev = {
            "tiles": np.abs(tiles / self.total_tiles - self.fractions) / self.fractions,
            "zone_tiles": np.abs(s[..., self.zt] / safe_t - self.whole_zone_t),
            "zone_cities": np.abs(s[..., self.zc] / s[..., 0:1] - self.whole_zone_c),
        }
        if self.has_classes:
            px = np.maximum(s[..., self.cl].sum(axis=-1, keepdims=True), 1e-12)
            dev["classes"] = np.abs(s[..., self.cl] / px - self.whole_class)
        return dev

    def __call__(self, s: np.ndarray) -> np.ndarray:
        lead = s.shape[:-2]
        value = np.zeros(lead)
        for name, d in self.deviations(s).items():
            if name == "zone_cities":  # held within quota rounding by construction
                continue
            d = d.reshape(*lead, -1)
            w = self.w["zones" if name.startswith("zone") else name]
            value = value + w * (d.max(axis=-1) + 0.5 * np.sqrt((d**2).mean(axis=-1)))
        return value


def assign_cities(
    table: CityTable,
    counts: Mapping[str, int],
    tile_fractions: Mapping[str, float],
    seed: int,
    iterations: int,
    weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Split index (0=train, 1=val, 2=test) per city of `table`, deterministic for a seed.

    `iterations` is the number of candidate swaps evaluated (in batches of BATCH).
    """
    sizes = np.array([counts[s] for s in SPLITS], dtype=np.int64)
    if sizes.sum() != len(table) or (sizes < 1).any():
        raise SplitError(f"city counts {dict(counts)} do not fit {len(table)} cities")
    fractions = np.array([tile_fractions[s] for s in SPLITS], dtype=float)
    if (fractions <= 0).any() or abs(fractions.sum() - 1.0) > 1e-6:
        raise SplitError(
            f"split.tile_fractions must be positive and sum to 1, got {dict(tile_fractions)}"
        )
    rng = np.random.default_rng(seed)

    # 1. construction: each zone's cities apportioned to the splits in proportion to city counts
    zone_sizes = np.bincount(table.zones, minlength=len(table.zone_names))
    quotas = zone_quotas(zone_sizes, sizes)
    assignment = np.empty(len(table), dtype=np.int64)
    for z in range(len(table.zone_names)):
        members = np.flatnonzero(table.zones == z)
        assignment[members] = _deal_zone(table.tiles[members], quotas[z], fractions, rng)
    objective = _Objective(table, fractions, weights or {})
    return _anneal(objective, table.zones, assignment, zone_sizes, sizes, quotas, iterations, rng)


def _deal_zone(
    tiles: np.ndarray, slots: np.ndarray, fractions: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Deal one zone's cities, largest first (seeded order among equals), each to the split with
    the largest remaining tile target per free city slot: every split gets its city quota of the
    zone and close to its tile share of the zone's tiles."""
    need = fractions * tiles.sum()
    free = slots.astype(np.int64).copy()
    out = np.empty(len(tiles), dtype=np.int64)
    order = np.lexsort((rng.random(len(tiles)), -tiles))
    for c in order:
        score = np.where(free > 0, need / np.maximum(free, 1), -np.inf)
        k = int(np.argmax(score))
        out[c] = k
        need[k] -= tiles[c]
        free[k] -= 1
    return out


def _anneal(
    objective: _Objective,
    zones: np.ndarray,
    assignment: np.ndarray,
    zone_sizes: np.ndarray,
    sizes: np.ndarray,
    quotas: np.ndarray,
    iterations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Seeded annealing over city swaps; returns the best assignment seen.

    A swap exchanges two cities of different splits, so city counts never change. Half the
    candidates swap within one climate zone (zone city counts unchanged); the others may cross
    zones but only while every zone x split city count stays within floor/ceil of its quota.
    """
    exact = np.outer(zone_sizes, sizes)
    lo = np.minimum(exact // len(zones), quotas)
    hi = np.maximum(-(-exact // len(zones)), quotas)
    cells = quotas.copy()
    by_zone = np.argsort(zones, kind="stable")
    zone_start = np.concatenate([[0], np.cumsum(zone_sizes)])[:-1]
    feats = objective.features
    sums = objective.sums(assignment)
    current = float(objective(sums))
    best_value, best_assignment = current, assignment.copy()
    steps = iterations // BATCH
    temps = T_START * (T_END / T_START) ** (np.arange(steps) / max(steps - 1, 1))
    rows, half = np.arange(BATCH), BATCH // 2
    for temp in temps:
        a = rng.integers(0, len(zones), BATCH)
        b = rng.integers(0, len(zones), BATCH)
        za = zones[a]
        pick = (rng.random(half) * zone_sizes[za[:half]]).astype(np.int64)
        b[:half] = by_zone[zone_start[za[:half]] + pick]  # same-zone partners
        zb, i, j = zones[b], assignment[a], assignment[b]
        ok = (i != j) & (
            (za == zb)
            | (
                (cells[za, i] > lo[za, i])
                & (cells[za, j] < hi[za, j])
                & (cells[zb, j] > lo[zb, j])
                & (cells[zb, i] < hi[zb, i])
            )
        )
        if not ok.any():
            continue
        d = feats[b] - feats[a]
        cand = np.broadcast_to(sums, (BATCH, *sums.shape)).copy()
        cand[rows, i] += d
        cand[rows, j] -= d
        values = np.where(ok, objective(cand), np.inf)
        k = int(np.argmin(values))
        delta = float(values[k]) - current
        if delta < -1e-12 or rng.random() < np.exp(-max(delta, 0.0) / temp):
            assignment[a[k]], assignment[b[k]] = j[k], i[k]
            cells[za[k], i[k]] -= 1
            cells[za[k], j[k]] += 1
            cells[zb[k], j[k]] -= 1
            cells[zb[k], i[k]] += 1
            sums, current = cand[k], float(values[k])
            if current < best_value - 1e-12:
                best_value, best_assignment = current, assignment.copy()
    return best_assignment


# ------------------------------------------------------------------ statistics
def _r(x: float) -> float:
    return round(float(x), 6)


def split_stats(
    table: CityTable, assignment: np.ndarray, tile_fractions: Mapping[str, float], seed: int
) -> dict:
    """Per-split cities, tiles and shares, and the balance measures (largest absolute share gaps)."""
    fractions = np.array([tile_fractions[s] for s in SPLITS], dtype=float)
    objective = _Objective(table, fractions, {})
    sums = objective.sums(assignment)
    dev = objective.deviations(sums)
    stats: dict = {"seed": int(seed), "cities": len(table), "tiles": int(table.tiles.sum())}
    whole = {
        "zones": {z: _r(v) for z, v in zip(table.zone_names, objective.whole_zone_t, strict=True)},
        "zone_city_shares": {
            z: _r(v) for z, v in zip(table.zone_names, objective.whole_zone_c, strict=True)
        },
        "classes": {c: _r(v) for c, v in zip(CLASS_KEYS, objective.whole_class, strict=True)},
    }
    for k, name in enumerate(SPLITS):
        s = sums[k]
        px = s[objective.cl].sum()
        stats[name] = {
            "cities": int(np.rint(s[0])),
            "tiles": int(np.rint(s[1])),
            "tile_share": _r(s[1] / objective.total_tiles),
            "target_tile_share": _r(fractions[k]),
            "zones": {
                z: _r(v) for z, v in zip(table.zone_names, s[objective.zt] / s[1], strict=True)
            },
            "zone_city_shares": {
                z: _r(v) for z, v in zip(table.zone_names, s[objective.zc] / s[0], strict=True)
            },
            "classes": {
                c: _r(v / px if px > 0 else 0.0)
                for c, v in zip(CLASS_KEYS, s[objective.cl], strict=True)
            },
        }
    stats["whole"] = whole
    stats["max_tile_share_error"] = _r(np.max(dev["tiles"] * fractions))
    stats["max_tile_count_rel_error"] = _r(np.max(dev["tiles"]))
    stats["max_zone_share_diff"] = _r(dev["zone_tiles"].max())
    stats["max_zone_city_share_diff"] = _r(dev["zone_cities"].max())
    stats["max_class_share_diff"] = _r(dev["classes"].max()) if "classes" in dev else 0.0
    return stats


# ------------------------------------------------------------------ inputs
def label_class_pixels(tile: TileRef, rows_per_read: int = 256) -> np.ndarray:
    """(10,) labelled pixels per class of one tile, read in row strips (streaming, block-aligned)."""
    path = tile.label_path
    counts = np.zeros(256, dtype=np.int64)
    try:
        with rasterio.open(path) as src:
            if src.count != 1 or src.dtypes[0] != "uint8":
                raise DataContractError(
                    f"{path}: label must be 1 band uint8, got {src.count} {src.dtypes[0]}"
                )
            block_h = src.block_shapes[0][0]
            step = max(block_h, rows_per_read // block_h * block_h)
            for row in range(0, src.height, step):
                window = Window(0, row, src.width, min(step, src.height - row))
                counts += np.bincount(src.read(1, window=window).ravel(), minlength=256)
    except rasterio.errors.RasterioError as exc:
        raise DataContractError(f"{path}: cannot read: {exc}") from exc
    return counts[1 : NUM_CLASSES + 1]


def read_class_mix(path: Path) -> dict[str, np.ndarray]:
    """class_mix.csv (city_id,class_1..class_10): nominal class pixel shares per city."""
    cols = [f"class_{c}" for c in range(1, NUM_CLASSES + 1)]
    out: dict[str, np.ndarray] = {}
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ["city_id", *cols] if c not in (reader.fieldnames or [])]
        if missing:
            raise DataContractError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                mix = np.array([float(row[c]) for c in cols])
            except ValueError as exc:
                raise DataContractError(f"{path}:{line}: class shares not numeric") from exc
            if (mix < 0).any() or mix.sum() <= 0:
                raise DataContractError(
                    f"{path}:{line}: class shares must be >= 0 with a positive sum"
                )
            out[row["city_id"]] = mix / mix.sum()
    return out


@dataclass
class SplitInputs:
    table: CityTable
    tiles: list[tuple[str, str]]  # (city_id, tile_id) in use, sorted
    zone_of: dict[str, str]
    class_source: str
    excluded_tiles: int = 0  # not listed in --valid
    skipped_entries: int = 0  # folders with ids outside the contract
    cities_without_tiles: list[str] = field(default_factory=list)


def _list_tiles(data_root: Path) -> tuple[list[tuple[str, str]], str, int]:
    if (data_root / "tiles").is_dir() or not (data_root / MANIFEST_FILE).is_file():
        refs, bad = discover_tiles(data_root)
        return [(t.city_id, t.tile_id) for t in refs], "tiles", len(bad)
    return read_manifest(data_root / MANIFEST_FILE), "manifest", 0


def load_inputs(data_root: Path, valid_tiles: Path | None = None) -> SplitInputs:
    """Cities, the tiles to split (only those in `valid_tiles` when given) and class pixels."""
    data_root = Path(data_root)
    cities = read_cities(data_root / CITIES_FILE)
    tiles, source, skipped = _list_tiles(data_root)
    if len(set(tiles)) != len(tiles):
        raise DataContractError(f"{data_root}: duplicate tiles in the tile list")
    unknown = sorted({c for c, _ in tiles} - set(cities))
    if unknown:
        raise DataContractError(
            f"{data_root}: tiles of cities missing from {CITIES_FILE}: {', '.join(unknown[:5])}"
        )
    excluded = 0
    if valid_tiles is not None:
        if not Path(valid_tiles).is_file():
            raise SplitError(f"{valid_tiles}: valid tiles file not found")
        valid = set(read_manifest(Path(valid_tiles)))
        stale = sorted(valid - set(tiles))
        if stale:
            raise SplitError(
                f"{valid_tiles}: {len(stale)} tile(s) not in the dataset {data_root}, "
                f"e.g. {stale[0][0]}/{stale[0][1]} (validation report from another dataset?)"
            )
        kept = [t for t in tiles if t in valid]
        excluded = len(tiles) - len(kept)
        tiles = kept
    if not tiles:
        raise SplitError(
            f"{data_root}: no tiles to split (expected tiles/ or {MANIFEST_FILE}"
            f"{', or tiles listed in ' + str(valid_tiles) if valid_tiles else ''})"
        )
    tiles = sorted(tiles)
    city_ids = sorted({c for c, _ in tiles})
    index = {c: i for i, c in enumerate(city_ids)}
    tile_counts = np.zeros(len(city_ids), dtype=np.int64)
    for c, _ in tiles:
        tile_counts[index[c]] += 1
    class_pixels = np.zeros((len(city_ids), NUM_CLASSES))
    if source == "tiles":
        class_source = "label.tif"
        for c, t in tiles:
            ref = tile_ref(data_root, c, t)
            if ref.has_label:
                class_pixels[index[c]] += label_class_pixels(ref)
    elif (data_root / CLASS_MIX_FILE).is_file():
        class_source = CLASS_MIX_FILE
        mix = read_class_mix(data_root / CLASS_MIX_FILE)
        missing = [c for c in city_ids if c not in mix]
        if missing:
            raise DataContractError(
                f"{data_root / CLASS_MIX_FILE}: no class mix for {', '.join(missing[:5])}"
            )
        for c in city_ids:  # tile-equivalents: nominal tiles have equal pixel counts
            class_pixels[index[c]] = mix[c] * tile_counts[index[c]]
    else:
        class_source = "none"
    zone_names = tuple(
        z for z in CLIMATE_ZONES if any(cities[c].climate_zone == z for c in city_ids)
    )
    zones = np.array([zone_names.index(cities[c].climate_zone) for c in city_ids], dtype=np.int64)
    table = CityTable(tuple(city_ids), zone_names, zones, tile_counts, class_pixels)
    return SplitInputs(
        table=table,
        tiles=tiles,
        zone_of={c: cities[c].climate_zone for c in city_ids},
        class_source=class_source,
        excluded_tiles=excluded,
        skipped_entries=skipped,
        cities_without_tiles=sorted(set(cities) - set(city_ids)),
    )


# ------------------------------------------------------------------ stage
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
    data_root: Path, out: Path, stats_path: Path, params: Params, valid_tiles: Path | None = None
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
