"""Shared by the mosaic tests: the fabricated tile, params, a run, a read, and `reference()`, the
expected composite written from the rule's statement in map coordinates (each 10 m pixel centre, the
20 m pixels around it, their SCL and bands), not from the code's grid arithmetic."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import numpy as np
import rasterio

from conftest import REPO
from landcover.bands import BANDS, SEASONS
from landcover.config import load_params
from landcover.dataset import City
from landcover.geo import TileGrid
from landcover.mosaic.opening import open_source
from landcover.mosaic.stage import mosaic_tiles
from landcover.synth.l2a import BANDS_10M, FakeScene

SIZE = 64
WEST, NORTH, EPSG = 500000.0, 5000000.0, 32632
TILE = TileGrid("c1", "r00c00", EPSG, WEST, NORTH, SIZE, SIZE)
CITY = City("c1", "Test", "IT", 45.13, 9.0, "continental")
MASKED = (0, 1, 3, 8, 9, 10)  # the default mask_scl
CLOUD_AND_SHADOW = (3, 8, 9, 10)
BANDS_20M = tuple(b for b in BANDS if b not in BANDS_10M)
SMALL_SCENES = {"mosaic.plausibility.min_land_pixels": 100}  # the default 500 is more land than 64 px hold


def params(**overrides):
    return load_params(REPO / "params.yaml", {**SMALL_SCENES, **overrides})


def _observation(s: FakeScene, tile: TileGrid, bilinear: bool, buffer_px: int, masked: tuple[int, ...]
                 ) -> np.ndarray:
    """(10, h, w) DN of one scene on the tile's 10 m pixels, NaN where the scene did not see the
    ground: the 20 m pixel a centre lies in is masked (SCL, nodata in a 20 m band, within `buffer_px`
    20 m pixels of masked cloud or shadow) or a 10 m band is nodata. A clear pixel's 20 m values:
    bilinear between the four surrounding 20 m centres, over the clear ones only, renormalised."""
    twenty = np.stack([s.dn(b) for b in BANDS_20M]).astype(np.float64)
    rows20, cols20 = s.scl.shape

    def clear20(r: int, c: int) -> bool:
        if not (0 <= r < rows20 and 0 <= c < cols20) or s.scl[r, c] in masked or (twenty[:, r, c] == 0).any():
            return False
        for dr in range(-buffer_px, buffer_px + 1):
            for dc in range(-buffer_px, buffer_px + 1):
                rr, cc = r + dr, c + dc
                if dr * dr + dc * dc <= buffer_px * buffer_px and 0 <= rr < rows20 and 0 <= cc < cols20 and \
                        s.scl[rr, cc] in masked and s.scl[rr, cc] in CLOUD_AND_SHADOW:
                    return False
        return True

    out = np.full((len(BANDS), tile.height, tile.width), np.nan)
    for j in range(tile.height):
        for i in range(tile.width):
            x, y = tile.west + 10 * (i + 0.5), tile.north - 10 * (j + 0.5)  # the pixel centre, in metres
            col10, row10 = int((x - s.west) // 10), int((s.north - y) // 10)
            col20, row20 = int((x - s.west) // 20), int((s.north - y) // 20)  # the 20 m pixel it lies in
            ten = np.array([s.dn(b)[row10, col10] for b in BANDS_10M], np.float64)
            if not clear20(row20, col20) or (ten == 0).any():
                continue
            if bilinear:
                u, v = (x - s.west) / 20 - 0.5, (s.north - y) / 20 - 0.5  # in units of 20 m centres
                c0, r0 = int(np.floor(u)), int(np.floor(v))
                num, den = np.zeros(len(BANDS_20M)), 0.0
                for r, wy in ((r0, 1 - (v - r0)), (r0 + 1, v - r0)):
                    for c, wx in ((c0, 1 - (u - c0)), (c0 + 1, u - c0)):
                        if clear20(r, c) and wy * wx > 0:
                            num += wy * wx * twenty[:, r, c]
                            den += wy * wx
                twenty_values = np.floor(num / den + 0.5)
            else:
                twenty_values = twenty[:, row20, col20]
            by_band = dict(zip(BANDS_10M, ten, strict=True)) | dict(zip(BANDS_20M, twenty_values, strict=True))
            out[:, j, i] = [by_band[b] for b in BANDS]
    return out


def reference(scenes: list[FakeScene], tile: TileGrid = TILE, offsets: list[int] | None = None,
              bilinear: bool = True, buffer_px: int = 0, masked: tuple[int, ...] = MASKED
              ) -> tuple[np.ndarray, np.ndarray]:
    """(composite, clear-day count): per pixel, the median of the clear observations (one per day:
    the first clear one of scenes on the same date) with each scene's own offset added."""
    by_day: dict[dt.date, np.ndarray] = {}
    for k, s in enumerate(scenes):
        seen = _observation(s, tile, bilinear, buffer_px, masked) + (s.offset if offsets is None else offsets[k])
        day = by_day.setdefault(s.when.date(), np.full_like(seen, np.nan))
        fill = np.isnan(day[0]) & ~np.isnan(seen[0])
        day[:, fill] = seen[:, fill]
    values = np.stack(list(by_day.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(values, axis=0)
    count = (~np.isnan(values[:, 0])).sum(0)
    # numpy's round (half to even) is the composite's documented rounding of a two-day median
    return np.where(np.isnan(median), 0, np.clip(np.round(median), 1, 65535)).astype(np.uint16), count


def expected(scenes: list[FakeScene], offsets: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    return reference(scenes, offsets=offsets)


def mosaic(source: Path, out: Path, p=None, tiles=(TILE,), year: int = 2023):
    p = p or params()
    return mosaic_tiles(p, out, list(tiles), [CITY], open_source(str(source), p.mosaic), year)


def read_tile(out: Path, season: str = "summer", tile: TileGrid = TILE) -> tuple[np.ndarray, np.ndarray, dict]:
    folder = out / "tiles" / tile.city_id / tile.tile_id
    with rasterio.open(folder / f"{season}.tif") as src:
        pixels = src.read()
        assert src.descriptions == BANDS and src.nodata == 0 and src.dtypes[0] == "uint16"
    with rasterio.open(folder / "clear_count.tif") as src:
        count = src.read(SEASONS.index(season) + 1)
    return pixels, count, json.loads((folder / "manifest.json").read_text())
