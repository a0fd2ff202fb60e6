"""The files of one mosaicked tile, in the data contract (BRIEF section 2): four season GeoTIFFs
(10 bands uint16, nodata 0, band names, tiled and compressed), the clear-observation count beside
them (uint8, one band per season, as ESA WorldCover ships its input-quality layer), and the
manifest. Every file is written to a temporary name and renamed; the manifest goes last and marks
the tile complete.

Compression: ZSTD level 1 with the horizontal predictor, which GDAL reads since 2.3 (QGIS 3 and every
current GDAL build have it): as small as deflate on these rasters and five times faster to write
(deflate was a fifth of a mosaic's time; docs/performance.md, section 7).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio

from landcover.bands import BANDS, REFLECTANCE_SCALE, SEASONS
from landcover.geo import TileGrid
from landcover.io_utils import atomic_path

MANIFEST = "manifest.json"
COUNT_FILE = "clear_count.tif"


def _profile(tile: TileGrid, count: int, dtype: str) -> dict:
    profile = dict(driver="GTiff", width=tile.width, height=tile.height, count=count, dtype=dtype,
                   crs=tile.crs, transform=tile.transform, nodata=0, compress="zstd", zstd_level=1, predictor=2,
                   interleave="band")
    if min(tile.width, tile.height) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def write_season(path: Path, tile: TileGrid, pixels: np.ndarray, season: str, window: list[str]) -> None:
    """(10, h, w) uint16 reflectance x 10000 (0 = no clear observation)."""
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **_profile(tile, len(BANDS), "uint16")) as dst:
        dst.write(pixels)
        dst.descriptions = BANDS
        dst.update_tags(season=season, window=f"{window[0]}/{window[1]}", scale_factor=str(1 / REFLECTANCE_SCALE),
                        source="landcover mosaic: Sentinel-2 L2A, quantile of clear observations")


def write_counts(path: Path, tile: TileGrid, counts: dict[str, np.ndarray]) -> None:
    """(4, h, w) uint8: clear observations (days) per season."""
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **{**_profile(tile, len(SEASONS), "uint8"),
                                                              "nodata": None}) as dst:
        dst.write(np.stack([counts[s] for s in SEASONS]).astype(np.uint8))
        dst.descriptions = tuple(f"{s} clear observations" for s in SEASONS)
        dst.update_tags(source="landcover mosaic: clear observation days per pixel (capped at 255)")


def read_manifest(tile_dir: Path) -> dict | None:
    try:
        return json.loads((tile_dir / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
