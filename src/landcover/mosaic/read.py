"""Scene files read onto a tile's grids, each opened once per season and read strip by strip.

A scene in the tile's UTM zone is on the same 10 m (and 20 m) grid: a strip is a plain window read
of its own pixels, the part outside the scene left at nodata. A scene of another zone is read through
GDAL's warper (a WarpedVRT onto the tile's grid) by nearest neighbour: an interpolating warp would mix
a cloud into its clear neighbours before any mask could stop it.

Reads of one strip run concurrently (`mosaic.read_threads`): on local disks that overlaps decoding
with the composite of the strip before; over HTTP it keeps several range requests in flight, which is
what hides a cloud bucket's latency. A failed read is retried (`mosaic.retries`); a file that still
fails names its scene (`UnreadableScene`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from landcover.bands import BANDS
from landcover.errors import LandcoverError
from landcover.geo import TileGrid
from landcover.mosaic.resample import buffer_pixels, coarse_grid
from landcover.mosaic.scenes import Scene

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
READ_ERRORS = (rasterio.errors.RasterioError, OSError)


class UnreadableScene(LandcoverError):
    """A scene one of whose files could not be read after the retries."""

    def __init__(self, scene_id: str, reason: str) -> None:
        super().__init__(f"{scene_id} ({reason})")
        self.scene_id, self.reason = scene_id, reason


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: the tile's 10 m grid, or the 20 m grid under it."""

    epsg: int
    transform: Affine
    width: int
    height: int

    @property
    def resolution(self) -> float:
        return self.transform.a


@dataclass(frozen=True)
class TileGrids:
    """The tile's 10 m grid, the 20 m grid under it (margin: the bilinear neighbours and the mask
    buffer's reach) and where the first 10 m pixel centre lies on the 20 m grid."""

    fine: Grid
    coarse: Grid
    u0: float
    v0: float
    buffer_px: int

    @classmethod
    def of(cls, tile: TileGrid, buffer_m: float = 0.0) -> TileGrids:
        buffer_px = buffer_pixels(buffer_m)
        transform, width, height, u0, v0 = coarse_grid(tile, margin=1 + buffer_px)
        return cls(Grid(tile.epsg, tile.transform, tile.width, tile.height),
                   Grid(tile.epsg, transform, width, height), u0, v0, buffer_px)

    def coarse_rows(self, r0: int, r1: int) -> tuple[int, int, float]:
        """The 20 m rows a strip of 10 m rows [r0, r1) needs (bilinear neighbours and buffer
        included), and the 20 m coordinate of the strip's first pixel centre within them."""
        v = self.v0 + r0 / 2
        lo = math.floor(v) - self.buffer_px
        hi = math.floor(self.v0 + (r1 - 1) / 2) + 2 + self.buffer_px
        return lo, hi, v - lo


class AssetReader:
    """One band file of a scene, opened once, read by rows of a grid at full width."""

    def __init__(self, href: str, grid: Grid, retries: int, retry_delay_s: float) -> None:
        self.href, self.grid, self.retries, self.retry_delay_s = href, grid, retries, retry_delay_s
        self.src = self._retry(lambda: rasterio.open(href))
        self.view = self.src
        self.col, self.row = self._offset()
        if self.col is None:  # another grid: GDAL's warper onto ours, nearest neighbour
            self.view = WarpedVRT(self.src, crs=f"EPSG:{grid.epsg}", transform=grid.transform, width=grid.width,
                                  height=grid.height, resampling=rasterio.enums.Resampling.nearest,
                                  src_nodata=0, nodata=0)
            self.col, self.row = 0, 0

    def _offset(self) -> tuple[int | None, int | None]:
        """The grid's origin in the file's pixels, when the file is on the same grid (same CRS and
        resolution, origin a whole number of pixels away, north up), else (None, None)."""
        t, g = self.src.transform, self.grid.transform
        same_crs = self.src.crs is not None and self.src.crs.to_epsg() == self.grid.epsg
        if not same_crs or t.b or t.d or not math.isclose(t.a, g.a) or not math.isclose(t.e, g.e):
            return None, None
        col, row = (g.c - t.c) / t.a, (g.f - t.f) / t.e
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            return None, None
        return round(col), round(row)

    def _retry(self, action):
        for attempt in range(self.retries + 1):
            try:
                return action()
            except READ_ERRORS:
                if attempt == self.retries:
                    raise
                time.sleep(self.retry_delay_s)
        raise AssertionError("unreachable")

    def read_rows(self, r0: int, r1: int, out: np.ndarray) -> None:
        """Rows [r0, r1) of the grid (may reach outside it) into `out` ((r1 - r0, grid width)); what
        the file does not cover stays as `out` was (zeros: nodata)."""
        rows = (max(r0 + self.row, 0), min(r1 + self.row, self.view.height))
        cols = (max(self.col, 0), min(self.col + self.grid.width, self.view.width))
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            return
        window = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
        dst = out[rows[0] - r0 - self.row:rows[1] - r0 - self.row, cols[0] - self.col:cols[1] - self.col]
        self._retry(lambda: self.view.read(1, window=window, out=dst))

    def close(self) -> None:
        if self.view is not self.src:
            self.view.close()
        self.src.close()


class SceneReader:
    """The ten bands and the SCL of one scene, on the tile's grids; its files opened concurrently
    through `pool` (over HTTP each open is a request: in a row, their latencies would add up)."""

    def __init__(self, scene: Scene, grids: TileGrids, retries: int, retry_delay_s: float, pool) -> None:
        self.scene, self.grids = scene, grids
        self.assets: dict[str, AssetReader] = {}

        def open_one(band: str) -> AssetReader:
            grid = grids.fine if band in BANDS_10M else grids.coarse
            return AssetReader(scene.item.assets[band].href, grid, retries, retry_delay_s)

        bands = (*BANDS_10M, *BANDS_20M, "SCL")
        opened = [pool.submit(open_one, band) for band in bands]
        failure = None
        for band, future in zip(bands, opened, strict=True):
            try:
                self.assets[band] = future.result()
            except READ_ERRORS as exc:
                failure = failure or exc
        if failure is not None:
            self.close()
            raise UnreadableScene(scene.id, _one_line(failure)) from failure

    def read(self, band: str, r0: int, r1: int, out: np.ndarray) -> None:
        try:
            self.assets[band].read_rows(r0, r1, out)
        except READ_ERRORS as exc:
            raise UnreadableScene(self.scene.id, f"{band}: {_one_line(exc)}") from exc

    def close(self) -> None:
        for asset in self.assets.values():
            asset.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@dataclass
class Strip:
    """One strip of every scene: (T, 4, R, W) 10 m bands, (T, 7, Rc, Wc) 20 m bands and SCL."""

    r0: int
    r1: int
    ten: np.ndarray
    twenty: np.ndarray
    v: float  # the 20 m row coordinate of the strip's first 10 m pixel centre within `twenty`


def read_strip(readers: list[SceneReader], grids: TileGrids, r0: int, r1: int, pool) -> Strip:
    """Every scene's rows for the 10 m strip [r0, r1); reads spread over `pool` (one task per file)."""
    lo, hi, v = grids.coarse_rows(r0, r1)
    width = grids.fine.width
    ten = np.zeros((len(readers), len(BANDS_10M), r1 - r0, width), np.uint16)
    twenty = np.zeros((len(readers), len(BANDS_20M) + 1, hi - lo, grids.coarse.width), np.uint16)
    jobs = []
    for t, reader in enumerate(readers):
        for i, band in enumerate(BANDS_10M):
            jobs.append((reader, band, r0, r1, ten[t, i]))
        for i, band in enumerate((*BANDS_20M, "SCL")):
            jobs.append((reader, band, lo, hi, twenty[t, i]))
    for done in pool.map(lambda job: job[0].read(*job[1:]), jobs):
        del done
    return Strip(r0, r1, ten, twenty, v)


@contextlib.contextmanager
def open_scenes(scenes: list[Scene], grids: TileGrids, retries: int, retry_delay_s: float, pool
                ) -> Iterator[list[SceneReader]]:
    """Every scene's files open (all at once, through `pool`), closed on the way out."""
    readers: list[SceneReader] = []
    try:
        for scene in scenes:
            readers.append(SceneReader(scene, grids, retries, retry_delay_s, pool))
        yield readers
    finally:
        for reader in readers:
            reader.close()


def strip_rows(height: int, scenes: int, width: int, budget_bytes: int) -> int:
    """Rows per strip: the strip's observations of every scene (about 80 bytes per scene and pixel
    through reading, upsampling and sorting) within `budget_bytes`, so memory does not grow with the
    number of scenes; even (20 m rows pair up), at least 16, at most the tile."""
    rows = int(budget_bytes // max(1, scenes * width * 80))
    return max(16, min(height + height % 2, rows - rows % 2))


BAND_ORDER = {b: i for i, b in enumerate(BANDS)}
