"""Scenes onto a tile's grid through odc-stac: Dask-backed, chunked, one time slice per scene
(`groupby="id"`: offsets and masks are per scene, and the composite fuses overpasses itself).

10 m bands are read on the tile's 10 m grid (an aligned scene is a plain read of its own pixels).
20 m bands and the SCL are read on a 20 m grid aligned to multiples of 20 m, as Sentinel-2's are,
so they too are plain reads, and then brought to 10 m here: bilinear for the bands (or nearest),
nearest for the SCL. GDAL's warper did the same through odc-stac at 25 ms per 512 px chunk and
band, 40 % of a mosaic's time (docs/performance.md); the upsampling below gives the same values
(a linear ramp comes out exact, tests/test_mosaic.py) for a fraction of that. Scenes on another
grid (another UTM zone) are reprojected by odc-stac onto the 20 m grid first.
"""

from __future__ import annotations

import math
import warnings

import dask.array as da
import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from landcover.bands import BANDS
from landcover.geo import TileGrid, snap
from landcover.mosaic.scenes import Scene

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
# odc-stac reprojects into in-memory arrays, which rasterio warns have no geotransform
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


def _geobox(width: int, height: int, transform: Affine, epsg: int):
    from odc.geo.geobox import GeoBox

    return GeoBox((height, width), transform, f"EPSG:{epsg}")


def coarse_grid(tile: TileGrid, factor: int = 2) -> tuple[Affine, int, int, float, float]:
    """The 20 m grid under a tile: aligned to multiples of 20 m, one 20 m pixel of margin, so every
    10 m pixel centre has a 20 m neighbour on each side. Returns (transform, width, height, and the
    20 m pixel coordinate of the first 10 m pixel centre along x and y)."""
    res = tile.resolution * factor
    west, north = snap(tile.west, res, "floor") - res, snap(tile.north, res, "ceil") + res
    u0 = (tile.west - west) / res + 0.5 / factor - 0.5
    v0 = (north - tile.north) / res + 0.5 / factor - 0.5
    width = math.floor(u0 + (tile.width - 1) / factor) + 2
    height = math.floor(v0 + (tile.height - 1) / factor) + 2
    return Affine(res, 0, west, 0, -res, north), width, height, u0, v0


def upsample(coarse: np.ndarray, u0: float, v0: float, shape: tuple[int, int], bilinear: bool,
             factor: int = 2) -> np.ndarray:
    """(..., h, w) on the fine grid from (..., H, W) on the coarse one; `u0`, `v0`: coarse pixel
    coordinates of the first fine pixel centre. Bilinear: a fine pixel next to a nodata (0) coarse
    pixel is nodata (a mixed edge is no clean observation). Nearest otherwise."""
    h, w = shape
    v = v0 + np.arange(h) / factor
    u = u0 + np.arange(w) / factor
    if not bilinear:
        rows, cols = np.floor(v + 0.5).astype(np.int64), np.floor(u + 0.5).astype(np.int64)
        return coarse[..., rows[:, None], cols[None, :]]
    r0, c0 = np.floor(v).astype(np.int64), np.floor(u).astype(np.int64)
    fy, fx = (v - r0).astype(np.float32), (u - c0).astype(np.float32)
    top, bottom = coarse[..., r0, :].astype(np.float32), coarse[..., r0 + 1, :].astype(np.float32)
    rows = top * (1 - fy)[:, None] + bottom * fy[:, None]
    rows_valid = (top > 0) & (bottom > 0)
    left, right = rows[..., c0], rows[..., c0 + 1]
    out = left * (1 - fx) + right * fx
    valid = rows_valid[..., c0] & rows_valid[..., c0 + 1]
    return np.where(valid, np.floor(out + 0.5), 0).astype(coarse.dtype)


def _to_fine(coarse: da.Array, tile: TileGrid, u0: float, v0: float, fine_chunks: tuple, bilinear: bool) -> da.Array:
    """Upsample a (T, B, H, W) Dask array block by block onto the tile grid's chunks."""
    blocks = []
    y0 = 0
    for ch in fine_chunks[0]:
        row, x0 = [], 0
        vs = v0 + y0 / 2
        r_lo, r_hi = math.floor(vs), math.floor(vs + (ch - 1) / 2) + 2
        for cw in fine_chunks[1]:
            us = u0 + x0 / 2
            c_lo, c_hi = math.floor(us), math.floor(us + (cw - 1) / 2) + 2
            part = coarse[:, :, r_lo:r_hi, c_lo:c_hi].rechunk({2: -1, 3: -1})
            row.append(part.map_blocks(upsample, us - c_lo, vs - r_lo, (ch, cw), bilinear, dtype=coarse.dtype,
                                       chunks=(*part.chunks[:2], (ch,), (cw,))))
            x0 += cw
        blocks.append(row)
        y0 += ch
    return da.block(blocks)


def load_stack(scenes: list[Scene], tile: TileGrid, chunk: int, resampling_20m: str) -> tuple[da.Array, da.Array]:
    """((T, 10, y, x) uint16 bands in BANDS order, (T, y, x) uint8 SCL) on the tile grid, as Dask
    arrays with one chunk along time and bands."""
    import odc.stac

    items = [s.item for s in scenes]
    common = dict(groupby="id", preserve_original_order=True, dtype="uint16", nodata=0, fail_on_error=True)
    fine = odc.stac.load(items, bands=list(BANDS_10M), chunks={"x": chunk, "y": chunk}, resampling="nearest",
                         geobox=_geobox(tile.width, tile.height, tile.transform, tile.epsg), **common)
    transform, width, height, u0, v0 = coarse_grid(tile)
    coarse = odc.stac.load(items, bands=[*BANDS_20M, "SCL"], chunks={"x": chunk // 2, "y": chunk // 2},
                           resampling={"*": resampling_20m, "SCL": "nearest"},
                           geobox=_geobox(width, height, transform, tile.epsg), **common)
    ten = da.stack([fine[b].data for b in BANDS_10M], axis=1)
    chunks = ten.chunks[2:]
    twenty = da.stack([coarse[b].data for b in BANDS_20M], axis=1)
    twenty = _to_fine(twenty, tile, u0, v0, chunks, bilinear=resampling_20m != "nearest")
    scl = _to_fine(coarse["SCL"].data[:, None], tile, u0, v0, chunks, bilinear=False)[:, 0].astype(np.uint8)
    by_name = {**{b: ten[:, i] for i, b in enumerate(BANDS_10M)}, **{b: twenty[:, i] for i, b in enumerate(BANDS_20M)}}
    stack = da.stack([by_name[b] for b in BANDS], axis=1).rechunk({0: -1, 1: -1})
    return stack, scl.rechunk({0: -1})
