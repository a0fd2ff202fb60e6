"""Web map tiles (WebMercator, 256 px) cut from the map COGs as they are, by rio-tiler: categories by
nearest neighbour (a class is never averaged), each raster reprojected from its own CRS on the fly,
the first raster with data winning where two overlap (display only). Pixel queries read the one
pixel under a point from each layer."""

from __future__ import annotations

import numpy as np
import rasterio
from pyproj import Transformer
from rio_tiler.io import Reader
from rio_tiler.models import ImageData

from landcover.viewer.layers import BaseImagery, LayerKind, MapSet, Raster

TILE = 256
BASE_RANGE = (0.0, 3000.0)  # reflectance x 10000 stretched to 0..255: bright enough for most scenes


def _tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    import morecantile

    b = morecantile.tms.get("WebMercatorQuad").bounds(x, y, z)
    return b.left, b.bottom, b.right, b.top


MAX_DECIMATION = 16  # a tile may read at most this many source pixels (of the coarsest overview) per pixel shown


def _shown(raster: Raster, z: int, y: int) -> bool:
    """Whether a tile at zoom `z` may read this raster: not when each of its pixels would cover more than
    MAX_DECIMATION x MAX_DECIMATION pixels of the raster's coarsest overview. Reading those through
    GDAL's warper costs the full resolution (minutes at a continent's zoom for a file without
    overviews); the page outlines the maps there instead."""
    import math

    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / 2**z))))
    metres = 2 * math.pi * 6_378_137 * math.cos(math.radians(lat)) / (TILE * 2**z)
    return metres <= MAX_DECIMATION * raster.coarsest_m


def _read(raster: Raster, z: int, x: int, y: int, indexes=1, resampling: str = "nearest") -> ImageData | None:
    if not _shown(raster, z, y):
        return None
    with Reader(str(raster.path)) as src:
        if not src.tile_exists(x, y, z):
            return None
        return src.tile(x, y, z, tilesize=TILE, indexes=indexes, resampling_method=resampling,
                        reproject_method=resampling)


def map_tile(maps: MapSet, kind: LayerKind, z: int, x: int, y: int) -> bytes | None:
    """PNG of one layer's tile in its colours, transparent where there is no data; None outside the maps."""
    rasters = maps.under(kind.key, *_tile_bounds(z, x, y))
    if not rasters:
        return None
    codes = np.zeros((TILE, TILE), np.uint8)
    filled = np.zeros((TILE, TILE), bool)
    for raster in rasters:
        image = _read(raster, z, x, y)
        if image is None:
            continue
        data = image.array[0]
        valid = ~np.ma.getmaskarray(data) & (np.ma.getdata(data) > 0)
        take = valid & ~filled
        codes[take] = np.ma.getdata(data)[take]
        filled |= take
    if not filled.any():
        return None
    colours = {k: v for k, v in kind.colours.items() if k > 0}
    image = ImageData(np.ma.MaskedArray(codes[None], mask=~filled[None]))
    return image.render(img_format="PNG", colormap=colours)


def base_tile(base: BaseImagery, z: int, x: int, y: int) -> bytes | None:
    """PNG of the summer true-colour composites under a tile."""
    rasters = base.under(*_tile_bounds(z, x, y))
    rgb = np.zeros((3, TILE, TILE), np.uint8)
    filled = np.zeros((TILE, TILE), bool)
    for raster in rasters:
        image = _read(raster, z, x, y, base.indexes, "bilinear")
        if image is None:
            continue
        data = np.ma.getdata(image.array).astype(np.float32)
        valid = ~np.ma.getmaskarray(image.array).any(axis=0) & (data.sum(axis=0) > 0)
        take = valid & ~filled
        lo, hi = BASE_RANGE
        scaled = np.clip((data - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
        rgb[:, take] = scaled[:, take]
        filled |= take
    if not filled.any():
        return None
    return ImageData(np.ma.MaskedArray(rgb, mask=np.repeat(~filled[None], 3, axis=0))).render(img_format="PNG")


def pixel(maps: MapSet, key: str, lon: float, lat: float) -> tuple[int, Raster] | None:
    """The value of a layer at a point (the first raster with data there), and that raster."""
    for raster in maps.under(key, lon, lat, lon, lat):
        with rasterio.open(raster.path) as ds:
            x, y = Transformer.from_crs(4326, ds.crs, always_xy=True).transform(lon, lat)
            row, col = ds.index(x, y)
            if 0 <= row < ds.height and 0 <= col < ds.width:
                value = int(ds.read(1, window=((row, row + 1), (col, col + 1)))[0, 0])
                if value:
                    return value, raster
    return None
