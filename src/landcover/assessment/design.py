"""A stratified random sample over a map, for a user with no reference yet: the strata are the map's
classes (or transitions), the sample size comes from a target standard error of the overall
accuracy and the user's accuracies expected of each class (Olofsson et al. 2014, section 5.1.1),
allocated proportionally with a floor for the rare classes, and the points are pixel centres drawn
uniformly among each stratum's pixels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import rasterio

from landcover.accuracy import allocate, sample_size
from landcover.assessment.maps import MapLayers
from landcover.errors import LandcoverError


@dataclass
class Design:
    strata: dict[int, int]  # code -> pixels
    pixel_area_m2: float
    expected_users: dict[int, float]
    target_se: float
    n: int
    allocation: dict[int, int]
    seed: int

    def record(self) -> dict:
        total = sum(self.strata.values())
        return {"strata": {str(k): v for k, v in self.strata.items()},
                "weights": {str(k): round(v / total, 6) for k, v in self.strata.items()},
                "pixel_area_m2": self.pixel_area_m2, "expected_users_accuracy": {str(k): v for k, v in
                                                                                 self.expected_users.items()},
                "target_se": self.target_se, "n": self.n, "allocation": {str(k): v for k, v in self.allocation.items()},
                "seed": self.seed}


def plan_design(layers: MapLayers, target_se: float, expected_users: float | Mapping[int, float], minimum: int,
                seed: int) -> Design:
    strata, pixel_area = layers.strata()
    if not strata:
        raise LandcoverError(f"{layers.folder}: the map has no mapped pixel to sample")
    codes = list(strata)
    if isinstance(expected_users, Mapping):
        given = {str(k): float(v) for k, v in expected_users.items()}
        users = {c: given.get(str(c), given.get("default", 0.8)) for c in codes}
    else:
        users = dict.fromkeys(codes, float(expected_users))
    total = sum(strata.values())
    weights = [strata[c] / total for c in codes]
    n = sample_size(weights, [users[c] for c in codes], target_se)
    counts = allocate(n, weights, minimum, [strata[c] for c in codes])
    return Design(strata, pixel_area, users, target_se, int(sum(counts)), dict(zip(codes, counts, strict=True)), seed)


def draw(layers: MapLayers, design: Design) -> list[tuple[int, int, float, float]]:
    """(code, raster index, x, y) of every point: pixel centres in the raster's CRS, uniform within
    each stratum (a pixel's global index among its stratum's pixels, in the map's reading order)."""
    rng = np.random.default_rng(design.seed)
    picks = {c: np.sort(rng.choice(design.strata[c], size=n, replace=False)) for c, n in design.allocation.items()
             if n}
    seen = dict.fromkeys(picks, 0)
    points = []
    for k, raster in enumerate(layers.rasters):
        with rasterio.open(raster.path) as ds:
            for window in raster.windows():
                block = ds.read(1, window=window)
                for code, chosen in picks.items():
                    where = np.flatnonzero(block == code)
                    lo, hi = np.searchsorted(chosen, [seen[code], seen[code] + len(where)])
                    for index in chosen[lo:hi] - seen[code]:
                        row, col = divmod(int(where[index]), block.shape[1])
                        x, y = raster.transform * (col + 0.5, window.row_off + row + 0.5)
                        points.append((code, k, x, y))
                    seen[code] += len(where)
    return points
