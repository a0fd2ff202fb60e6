"""Scenes onto a tile's grid through odc-stac: Dask-backed, chunked, one time slice per scene
(`groupby="id"`: offsets and masks are per scene, and the composite fuses overpasses itself).

10 m bands are read on the tile's 10 m grid (an aligned scene is a plain read of its own pixels).
20 m bands and the SCL are read on a 20 m grid aligned to multiples of 20 m, as Sentinel-2's are,
so they too are plain reads; what is clear is decided there, and the 20 m half is brought to 10 m
without ever interpolating across a masked pixel (`resample.py`). GDAL's warper upsampled through
odc-stac at 25 ms per 512 px chunk and band, 40 % of a mosaic's time (docs/performance.md); the
upsampling here is a fraction of that. Scenes on another grid (another UTM zone) are reprojected by
odc-stac onto the 10 m and 20 m grids by nearest neighbour: an interpolating warp would mix a cloud
into its clear neighbours before any mask could stop it.
"""

from __future__ import annotations

import math
import warnings

import dask.array as da
import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from landcover.bands import BANDS
from landcover.geo import TileGrid
from landcover.mosaic.resample import buffer_pixels, coarse_grid, fine_block
from landcover.mosaic.scenes import Scene

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
# odc-stac reprojects into in-memory arrays, which rasterio warns have no geotransform
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


def _geobox(width: int, height: int, transform: Affine, epsg: int):
    from odc.geo.geobox import GeoBox

    return GeoBox((height, width), transform, f"EPSG:{epsg}")


def _to_fine(coarse: da.Array, u0: float, v0: float, fine_chunks: tuple, bilinear: bool, masked: tuple[int, ...],
             buffer_px: int) -> da.Array:
    """(T, B + 2, y, x) on the tile grid's chunks from the (T, B + 1, H, W) 20 m bands and SCL: each
    fine chunk gets the 20 m pixels under it, its bilinear neighbours and the buffer's reach."""
    blocks = []
    y0 = 0
    for ch in fine_chunks[0]:
        row, x0 = [], 0
        vs = v0 + y0 / 2
        r_lo, r_hi = math.floor(vs) - buffer_px, math.floor(vs + (ch - 1) / 2) + 2 + buffer_px
        for cw in fine_chunks[1]:
            us = u0 + x0 / 2
            c_lo, c_hi = math.floor(us) - buffer_px, math.floor(us + (cw - 1) / 2) + 2 + buffer_px
            part = coarse[:, :, r_lo:r_hi, c_lo:c_hi].rechunk({1: -1, 2: -1, 3: -1})
            row.append(part.map_blocks(fine_block, us - c_lo, vs - r_lo, (ch, cw), bilinear, masked, buffer_px,
                                       dtype=np.uint16, chunks=(part.chunks[0], (coarse.shape[1] + 1,), (ch,), (cw,))))
            x0 += cw
        blocks.append(row)
        y0 += ch
    return da.block(blocks)


def load_stack(scenes: list[Scene], tile: TileGrid, chunk: int, resampling_20m: str, masked: tuple[int, ...],
               buffer_m: float = 0.0) -> tuple[da.Array, da.Array, da.Array]:
    """((T, 10, y, x) uint16 bands in BANDS order, (T, y, x) uint8 SCL, (T, y, x) bool clear as
    decided at 20 m) on the tile grid, as Dask arrays with one chunk along time and bands. Bands of
    an unclear pixel are 0 in the 20 m half; the composite also drops 10 m nodata."""
    import odc.stac

    items = [s.item for s in scenes]
    common = dict(groupby="id", preserve_original_order=True, dtype="uint16", nodata=0, fail_on_error=True)
    fine = odc.stac.load(items, bands=list(BANDS_10M), chunks={"x": chunk, "y": chunk}, resampling="nearest",
                         geobox=_geobox(tile.width, tile.height, tile.transform, tile.epsg), **common)
    buffer_px = buffer_pixels(buffer_m)
    transform, width, height, u0, v0 = coarse_grid(tile, margin=1 + buffer_px)
    coarse = odc.stac.load(items, bands=[*BANDS_20M, "SCL"], chunks={"x": chunk // 2, "y": chunk // 2},
                           resampling="nearest",
                           geobox=_geobox(width, height, transform, tile.epsg), **common)
    ten = da.stack([fine[b].data for b in BANDS_10M], axis=1)
    twenty = da.stack([coarse[b].data for b in (*BANDS_20M, "SCL")], axis=1)
    half = _to_fine(twenty, u0, v0, ten.chunks[2:], resampling_20m != "nearest", masked, buffer_px)
    by_name = {**{b: ten[:, i] for i, b in enumerate(BANDS_10M)}, **{b: half[:, i] for i, b in enumerate(BANDS_20M)}}
    stack = da.stack([by_name[b] for b in BANDS], axis=1).rechunk({0: -1, 1: -1})
    scl = half[:, len(BANDS_20M)].astype(np.uint8).rechunk({0: -1})
    clear = half[:, len(BANDS_20M) + 1].astype(bool).rechunk({0: -1})
    return stack, scl, clear
