"""Elevation, slope and aspect on a tile's grid.

The DEM (any CRS and resolution) is reprojected bilinearly onto the tile grid grown by one pixel on
every side, so that slope and aspect at the tile's edge have all eight neighbours (no edge
artefacts); a margin pixel the DEM does not reach is extrapolated linearly from the two pixels
inside it (a plane stays a plane). A tile pixel the DEM does not cover is an error, never filled.

Slope and aspect follow GDAL's DEMProcessing (`gdaldem slope` / `gdaldem aspect`): Horn's (1981)
3 x 3 finite differences on the projected grid with its pixel size, slope in degrees, aspect in
degrees clockwise from north (the direction the slope faces), 0 on flat ground as `gdaldem aspect
-zero_for_flat` writes it. `tests/test_landscape.py` checks them against `gdaldem` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from landcover.dataset import DataContractError


@dataclass(frozen=True)
class Terrain:
    elevation: np.ndarray  # (h, w) metres
    slope: np.ndarray  # degrees
    aspect: np.ndarray  # degrees clockwise from north, 0 where flat


def dem_on_grid(dem: str, crs, transform: Affine, shape: tuple[int, int], what: str) -> np.ndarray:
    """(h + 2, w + 2) float64 DEM on the grid grown by one pixel; raises naming `what` when the DEM
    does not cover every pixel of the grid itself."""
    h, w = shape
    grown = transform * Affine.translation(-1, -1)
    out = np.full((h + 2, w + 2), np.nan, dtype=np.float32)
    try:
        with rasterio.open(dem) as src:
            if src.crs is None:
                raise DataContractError(f"{dem}: DEM has no CRS")
            reproject(rasterio.band(src, 1), out, src_nodata=src.nodata, dst_transform=grown, dst_crs=crs,
                      dst_nodata=np.nan, resampling=Resampling.bilinear)
    except rasterio.errors.RasterioError as exc:
        raise DataContractError(f"{dem}: cannot read the DEM: {exc}") from exc
    missing = np.isnan(out[1:-1, 1:-1])
    if missing.any():
        raise DataContractError(f"{what}: the DEM {dem} does not cover {missing.mean():.1%} of the tile "
                                f"({int(missing.sum())} pixels); give a DEM that covers it")
    return _extrapolate_margin(out.astype(np.float64))


def _extrapolate_margin(z: np.ndarray) -> np.ndarray:
    for axis in (0, 1):
        z = np.moveaxis(z, axis, 0)
        for edge, inner, further in ((0, 1, 2), (-1, -2, -3)):
            gap = np.isnan(z[edge])
            z[edge][gap] = 2 * z[inner][gap] - z[further][gap]
        z = np.moveaxis(z, 0, axis)
    return z


def horn(z: np.ndarray, res_x: float, res_y: float) -> tuple[np.ndarray, np.ndarray]:
    """(slope degrees, aspect degrees from north) of the inner (h, w) of a (h + 2, w + 2) grid."""
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * res_x)  # rises to the east when > 0
    dy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * res_y)  # rises to the south when > 0
    slope = np.degrees(np.arctan(np.hypot(dx, dy)))
    angle = np.degrees(np.arctan2(dy, -dx))
    aspect = np.where(angle > 90, 450 - angle, 90 - angle)
    aspect = np.where((dx == 0) & (dy == 0), 0.0, np.where(aspect >= 360, aspect - 360, aspect))
    return slope, aspect


def terrain(dem: str, crs, transform: Affine, shape: tuple[int, int], what: str) -> Terrain:
    z = dem_on_grid(dem, crs, transform, shape, what)
    slope, aspect = horn(z, abs(transform.a), abs(transform.e))
    return Terrain(z[1:-1, 1:-1], slope, aspect)
