"""Cloud-Optimized GeoTIFFs in the project's one layout: the translation every output uses, and a
small uint8 raster written as one, with its colour table and names, atomically."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles


def write_uint8_cog(path: Path, data: np.ndarray, crs, transform, description: str,
                    colormap: dict[int, tuple[int, int, int, int]] | None = None, tags: dict[str, str] | None = None,
                    resampling: str = "mode", nodata: int = 0) -> Path:
    """`data` (H, W) uint8 written as a deflate COG with overviews; renamed into place when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = data.shape
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        raw, cog = Path(tmp) / "raw.tif", Path(tmp) / "cog.tif"
        with rasterio.open(raw, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=crs,
                           transform=transform, nodata=nodata) as dst:
            dst.write(data.astype(np.uint8), 1)
            if colormap:
                dst.write_colormap(1, colormap)
            dst.set_band_description(1, description)
            if tags:
                dst.update_tags(**tags)
        translate_to_cog(raw, cog, resampling)
        cog.replace(path)
    return path


def translate_to_cog(src: Path, dst: Path, resampling: str) -> Path:
    """The project's COG layout: deflate, 256 px blocks, overviews down to about 128 px (at least one
    level); `resampling` "mode" for categories, "average" for continuous values."""
    with rasterio.open(src) as ds:
        side = max(ds.width, ds.height)
    profile = cog_profiles.get("deflate")
    profile.update(blockxsize=256, blockysize=256)
    levels = max(1, math.ceil(math.log2(side / 128)))
    cog_translate(src, dst, profile, overview_resampling=resampling, overview_level=levels, in_memory=False,
                  quiet=True, use_cog_driver=False)
    return dst
