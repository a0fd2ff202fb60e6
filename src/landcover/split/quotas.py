"""How many cities each split gets, overall and per climate zone (exact integers).

City counts per split come from the reference split (425/123/201 of 749) by largest-remainder
rounding, at least one city each. Each climate zone's cities are then apportioned to the splits
in proportion to those counts (a controlled rounding of zone x split quotas whose row and column
sums are exact), so every split sees every zone in its share of cities by construction.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from landcover.config import SPLITS
from landcover.split.errors import SplitError


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
