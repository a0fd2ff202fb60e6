"""`quicklook.png` of an area: summer composite, land cover, fuel and confidence side by side, read
at reduced resolution (overviews), so it costs little whatever the area's size."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from landcover.bands import NUM_BANDS, RGB_BAND_INDICES
from landcover.maps.layout import Area, Placed
from landcover.plots import quicklook_figure, true_colour

MAX_SIDE = 800  # pixels per panel side
QUICKLOOK = "quicklook.png"


def _input_tile(input_root: Path, tile_dir: Path) -> Path | None:
    for candidate in (input_root / "tiles" / tile_dir.parent.name / tile_dir.name,
                      input_root / tile_dir.parent.name / tile_dir.name):
        if (candidate / "summer.tif").is_file():
            return candidate
    return None


def summer_rgb(area: Area, input_root: Path, factor: int, shape: tuple[int, int]) -> np.ndarray | None:
    """True colour of the summer composites of the area's tiles, `factor` times smaller."""
    canvas = np.zeros((*shape, 3), np.float32)
    found = False
    for p in area.tiles:
        tile = _input_tile(input_root, p.tile_dir)
        if tile is None:
            continue
        r0, c0 = p.row // factor, p.col // factor
        h, w = min(shape[0] - r0, max(1, p.height // factor)), min(shape[1] - c0, max(1, p.width // factor))
        with rasterio.open(tile / "summer.tif") as src:
            bands = [i + 1 for i in RGB_BAND_INDICES] if src.count == NUM_BANDS else [1, 2, 3]
            rgb = src.read(bands, out_shape=(3, h, w), resampling=Resampling.average).astype(np.float32)
        canvas[r0:r0 + h, c0:c0 + w] = np.moveaxis(rgb, 0, -1)
        found = True
    return true_colour(canvas) if found else None


def write_quicklook(area: Area, folder: Path, input_root: Path | None, tile: Placed | None = None) -> Path:
    """The area's quicklook, or with `tile` that tile's (`tiles/<tile>.png`), from the area COGs."""
    if tile is not None:  # the tile's window of the area, as an area of its own
        area = Area(area.name, area.crs, area.transform * Affine.translation(tile.col, tile.row), tile.width,
                    tile.height, [Placed(tile.tile_dir, 0, 0, tile.width, tile.height)])
        window = Window(tile.col, tile.row, tile.width, tile.height)
        path, title = folder / "tiles" / f"{tile.tile_dir.name}.png", f"{area.name} / {tile.tile_dir.name}"
    else:
        window, path = None, folder / QUICKLOOK
        title = f"{area.name}: {len(area.tiles)} tiles, {area.width} x {area.height} px, EPSG:{area.crs.to_epsg()}"
    factor = max(1, math.ceil(max(area.width, area.height) / MAX_SIDE))
    shape = (max(1, area.height // factor), max(1, area.width // factor))
    panels: dict[str, np.ndarray] = {}
    if input_root is not None and (rgb := summer_rgb(area, Path(input_root), factor, shape)) is not None:
        panels["summer RGB"] = rgb
    for name, raster in (("land cover", "landcover.tif"), ("fuel", "fuel.tif"), ("confidence", "confidence.tif")):
        with rasterio.open(folder / raster) as src:
            panels[name] = src.read(1, window=window, out_shape=shape, resampling=Resampling.nearest)
    path.parent.mkdir(parents=True, exist_ok=True)
    return quicklook_figure(panels, path, title)
