"""One season of one tile: its scenes read strip by strip and composited, each scene's plausibility
checked in the same pass, unreadable scenes named.

The tile is done in strips of rows sized so that every scene's observations of a strip fit
`mosaic.memory_mb` (an exact quantile needs every observation of a pixel at once), so memory does not
grow with the number of scenes. One thread reads the next strip (its files concurrently, through the
I/O pool) while `mosaic.workers` threads composite the strips before it; each file is opened once per
season and GDAL's block cache holds one block row of every file, so every block is decoded once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import rasterio

from landcover.bands import BANDS
from landcover.config import MosaicParams
from landcover.errors import LandcoverError
from landcover.geo import TileGrid
from landcover.maps.gdal_cache import gdal_cache_budget
from landcover.mosaic.kernel import composite_strip
from landcover.mosaic.read import (
    BANDS_20M,
    SceneReader,
    Strip,
    TileGrids,
    UnreadableScene,
    open_scenes,
    read_strip,
    strip_rows,
)
from landcover.mosaic.resample import clear_20m
from landcover.mosaic.scenes import Scene, solar_day_index


class TileFailed(LandcoverError):
    """A tile that could not be made; the message names the tile, the season and the scenes."""


@dataclass
class SeasonComposite:
    pixels: np.ndarray  # (10, h, w) uint16, 0 = no clear observation
    count: np.ndarray  # (h, w) uint8 clear days
    used: list[Scene]
    excluded: list[dict] = field(default_factory=list)  # {"id", "reason"}

    def describe(self, window: tuple[dt.datetime, dt.datetime]) -> dict:
        nodata = float((self.count == 0).mean())
        return {"window": [window[0].isoformat(), window[1].isoformat()],
                "scenes": [s.describe() for s in self.used], "excluded": self.excluded,
                "nodata_fraction": round(nodata, 6),
                "clear_days": {"min": int(self.count.min()), "median": float(np.median(self.count)),
                               "max": int(self.count.max())}}


def gdal_options(mp: MosaicParams, s3_endpoint: str | None = None) -> dict[str, str]:
    """GDAL settings for reading scenes, local or remote: no directory listings on open, HTTP retries,
    neighbouring byte ranges merged into one request, several ranges per request where the server
    allows, a file's header in its first request; an S3 store of its own (the Copernicus Data Space's eodata)
    gets path-style requests to its endpoint, with keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    in each process's environment."""
    options = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": str(mp.retries),
               "GDAL_HTTP_RETRY_DELAY": str(mp.retry_delay_s), "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
               "GDAL_HTTP_MULTIRANGE": "YES", "GDAL_INGESTED_BYTES_AT_OPEN": "65536",
               "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.jp2,.JP2,.xml"}
    if s3_endpoint:
        options |= {"AWS_S3_ENDPOINT": s3_endpoint, "AWS_VIRTUAL_HOSTING": "FALSE"}
    return options


def _block_row_bytes(readers: list[SceneReader]) -> int:
    """One block row of every file, across the tile: what GDAL's cache must hold so that strips
    thinner than a block decode each block once."""
    total = 0
    for reader in readers:
        for asset in reader.assets.values():
            bh, bw = asset.view.block_shapes[0]
            total += (math.ceil(asset.grid.width / bw) + 1) * bw * bh * np.dtype(asset.view.dtypes[0]).itemsize
    return total


class Compositor:
    """Composites seasons of tiles with one I/O pool (reads) and one compute pool (strips)."""

    def __init__(self, mp: MosaicParams, env: dict[str, str]) -> None:
        self.mp, self.env = mp, env
        self.masked = mp.masked_classes()
        self.bilinear = mp.resampling_20m != "nearest"
        self.workers = mp.workers or max(1, len(_cpus()))

    def _thread_env(self) -> None:
        rasterio.Env(**self.env).__enter__()  # for the pool thread's lifetime: GDAL options are per thread

    def season(self, scenes: list[Scene], tile: TileGrid, season: str) -> SeasonComposite:
        """The season's composite; an unreadable scene fails the tile, naming it, or (with
        mosaic.skip_unreadable_scenes) is left out and named in the manifest."""
        excluded: list[dict] = []
        tries = f"after {self.mp.retries + 1} tries"
        while True:
            try:
                result = self.composite(scenes, tile)
            except UnreadableScene as exc:
                if not self.mp.skip_unreadable_scenes:
                    raise TileFailed(f"{tile.key} {season}: unreadable scene(s) {tries}: {exc}") from exc
                excluded.append({"id": exc.scene_id, "reason": f"unreadable {tries}: {exc.reason}"})
                scenes = [s for s in scenes if s.id != exc.scene_id]
                continue
            result.excluded.extend(excluded)
            return result

    def composite(self, scenes: list[Scene], tile: TileGrid, check: bool = True) -> SeasonComposite:
        if not scenes:
            return SeasonComposite(np.zeros((len(BANDS), tile.height, tile.width), np.uint16),
                                   np.zeros((tile.height, tile.width), np.uint8), [])
        mp, grids = self.mp, TileGrids.of(tile, self.mp.mask_buffer_m)
        offsets = np.ascontiguousarray([s.offsets for s in scenes], dtype=np.float32)
        day_of = solar_day_index(scenes, tile.centre_lon())
        pixels = np.zeros((len(BANDS), tile.height, tile.width), np.uint16)
        count = np.zeros((tile.height, tile.width), np.uint8)
        land = np.zeros((2, len(scenes), 2), np.int64)  # (with offset, without) x scene x (land, <= 0)
        lock = threading.Lock()
        rows = strip_rows(tile.height, len(scenes), tile.width, mp.memory_mb * 2**20 // (self.workers + 1))

        def compose(strip: Strip) -> None:
            clear = clear_20m(strip.twenty[:, :len(BANDS_20M)], strip.twenty[:, len(BANDS_20M)], self.masked,
                              grids.buffer_px)
            out = np.empty((len(BANDS) + 1, strip.r1 - strip.r0, tile.width), np.uint16)
            counted = np.zeros((len(scenes), 2), np.int64)
            composite_strip(strip.ten, strip.twenty, clear, offsets, day_of, strip.v, grids.u0,
                            self.bilinear, mp.quantile, out, counted)
            pixels[:, strip.r0:strip.r1], count[strip.r0:strip.r1] = out[:-1], out[-1]
            with lock:
                land[0] += counted
                land[1, :, 0] += counted[:, 0]  # without any offset, no B02 DN (1 or more) is <= 0

        with rasterio.Env(**self.env), \
                ThreadPoolExecutor(mp.read_threads, "mosaic-read", initializer=self._thread_env) as io, \
                open_scenes(scenes, grids, mp.retries, mp.retry_delay_s, io) as readers, \
                gdal_cache_budget(2 * _block_row_bytes(readers)), \
                ThreadPoolExecutor(self.workers, "mosaic-composite") as compute:
            pending: deque = deque()
            for r0 in range(0, tile.height, rows):
                pending.append(compute.submit(compose, read_strip(readers, grids, r0, min(tile.height, r0 + rows),
                                                                  io)))
                while len(pending) > self.workers:
                    pending.popleft().result()
            while pending:
                pending.popleft().result()
        if not check:
            return SeasonComposite(pixels, count, scenes)
        keep, excluded, changed = judge(scenes, land[0], land[1], mp)
        if changed:
            return dataclasses.replace(self.composite(keep, tile, check=False), excluded=excluded)
        return SeasonComposite(pixels, count, scenes)


def judge(scenes: list[Scene], with_offset: np.ndarray, without_offset: np.ndarray, mp: MosaicParams
          ) -> tuple[list[Scene], list[dict], bool]:
    """Scenes whose clear land pixels are mostly <= 0 after their offset: drop or fix them."""
    rule = mp.plausibility
    keep, excluded, changed = [], [], False

    def implausible(counts: np.ndarray) -> bool:
        land, bad = int(counts[0]), int(counts[1])
        return land >= rule.min_land_pixels and bad / land > rule.max_nonpositive_fraction

    for scene, a, b in zip(scenes, with_offset, without_offset, strict=True):
        if not implausible(a):
            keep.append(scene)
            continue
        changed = True
        share = f"{a[1] / a[0]:.0%} of {a[0]} clear land pixels have B02 <= 0 after offset {min(scene.offsets):g} " \
                f"({scene.offset_source})"
        if rule.on_fail == "fix" and any(scene.offsets) and not implausible(b):
            keep.append(dataclasses.replace(scene, offsets=(0.0,) * len(BANDS),
                                            offset_source=f"plausibility: offset not applied ({share})"))
        else:
            excluded.append({"id": scene.id, "reason": f"implausible: {share}"})
    return keep, excluded, changed


def _cpus() -> set[int]:
    import os

    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
