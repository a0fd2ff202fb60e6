"""The assignment of whole cities to splits: construction, then a seeded search.

1. **Construction.** Each climate zone's cities get their zone x split quotas (`quotas.py`).
   Within a zone, cities are dealt largest first to the split furthest below its tile target,
   so tile shares and zone shares by tiles start balanced.
2. **Search.** Seeded annealing over city swaps between splits (city counts never change; zone
   city counts stay within their quota rounding), evaluating batches of random swaps at once and
   taking the best: the objective is the weighted largest deviation of tile share (relative to
   its target), climate-zone shares by tiles and class pixel shares of each split from the
   whole, plus a smaller root-mean-square term that breaks ties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from landcover.classes import NUM_CLASSES
from landcover.config import SPLITS
from landcover.split.errors import SplitError
from landcover.split.quotas import zone_quotas

BATCH = 32  # candidate swaps evaluated together per search step
T_START, T_END = 3e-3, 1e-5  # annealing temperatures (objective units: share gaps)
DEFAULT_WEIGHTS = {"tiles": 1.0, "zones": 1.0, "classes": 1.0}


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
