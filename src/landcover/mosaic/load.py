"""Scenes onto a tile's grid through odc-stac: Dask-backed, chunked, reprojected per band.

10 m bands keep their pixels (nearest: on an aligned grid a plain read), 20 m bands are
resampled (bilinear by default) and the SCL by nearest neighbour. Every scene stays its own
time slice (`groupby="id"`): offsets and masks are per scene, and the composite fuses overpasses
itself.
"""

from __future__ import annotations

import warnings

import dask.array as da
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from landcover.bands import BANDS
from landcover.geo import TileGrid
from landcover.mosaic.scenes import Scene

BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
# odc-stac reprojects into in-memory arrays, which rasterio warns have no geotransform
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


def geobox(tile: TileGrid):
    from odc.geo.geobox import GeoBox

    return GeoBox((tile.height, tile.width), Affine(*tile.transform[:6]), f"EPSG:{tile.epsg}")


def load_stack(scenes: list[Scene], tile: TileGrid, chunk: int, resampling_20m: str,
               bands: tuple[str, ...] = BANDS) -> tuple[da.Array, da.Array]:
    """((T, B, y, x) uint16 band stack, (T, y, x) uint8 SCL) as Dask arrays, one chunk of time.
    Everything is read as uint16 (odc-stac takes one dtype here); the SCL is narrowed after."""
    import odc.stac

    ds = odc.stac.load(
        [s.item for s in scenes], bands=[*bands, "SCL"], geobox=geobox(tile), groupby="id",
        chunks={"x": chunk, "y": chunk}, preserve_original_order=True,
        resampling={"*": "nearest", **{b: resampling_20m for b in BANDS_20M if b in bands}},
        dtype="uint16", nodata=0, fail_on_error=True,
    )
    stack = da.stack([ds[b].data for b in bands], axis=1).rechunk({0: -1, 1: -1})
    scl = ds["SCL"].data.astype("uint8").rechunk({0: -1})
    return stack, scl
