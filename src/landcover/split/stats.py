"""Per-split counts and shares, and the balance measures written as DVC metrics.

The balance measures are the largest absolute share differences between any split and the
whole dataset (docs/split.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from landcover.classes import CLASSES
from landcover.config import SPLITS
from landcover.split.assign import CityTable, _Objective

CLASS_KEYS = tuple(c.name.lower().replace(" ", "_") for c in CLASSES)


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
