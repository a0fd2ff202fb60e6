"""The whole area as one Cloud-Optimized GeoTIFF, copied tile by tile (memory holds one tile,
whatever the area's size), with the tiles' colour table, names and tags."""

from __future__ import annotations

import tempfile
from pathlib import Path

import rasterio
from rasterio.windows import Window

from landcover.maps.cog import translate_to_cog
from landcover.maps.gdal_cache import gdal_cache_budget
from landcover.maps.layout import Area

KEPT_TAGS = ("model", "crosswalk_version", "code", "min_confidence")  # the run's identity, not the tile's
NAME_TAGS = ("CLASS_", "FUEL_", "TRANSITION_", "MASK_")  # code names travel inside the GeoTIFF
CACHE = 64 * 2**20


def write_area_cog(area: Area, raster: str, target: Path, resampling: str) -> None:
    """Write `target` atomically: the tiles' `raster` placed on the area grid, nodata elsewhere."""
    first = area.tiles[0].tile_dir / raster
    with rasterio.open(first) as src:
        dtype, nodata, description = src.dtypes[0], src.nodata, src.descriptions[0]
        colormap = src.colormap(1) if src.colorinterp[0].name == "palette" else None
        tags = {k: v for k, v in src.tags().items() if k.startswith(NAME_TAGS) or k in KEPT_TAGS}
    profile = dict(driver="GTiff", width=area.width, height=area.height, count=1, dtype=dtype, crs=area.crs,
                   transform=area.transform, nodata=nodata, tiled=True, blockxsize=256, blockysize=256)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp, gdal_cache_budget(CACHE):
        raw, cog = Path(tmp) / "raw.tif", Path(tmp) / "cog.tif"
        with rasterio.open(raw, "w", **profile) as dst:
            for p in area.tiles:
                with rasterio.open(p.tile_dir / raster) as src:
                    dst.write(src.read(1), 1, window=Window(p.col, p.row, p.width, p.height))
            if colormap:
                dst.write_colormap(1, colormap)
            if description:
                dst.set_band_description(1, description)
            dst.update_tags(area=area.name, tiles=str(len(area.tiles)), **tags)
        translate_to_cog(raw, cog, resampling)
        cog.replace(target)
