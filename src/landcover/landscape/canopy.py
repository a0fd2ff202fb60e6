"""Canopy fuel layers of a tile from its land cover: the params table of the tile's climate zone,
or, per attribute, a raster (a canopy height or tree cover density map) that replaces the table on
forest pixels. Non-forest classes have no canopy (0). Natural units here: cover %, heights m,
bulk density kg/m3; the tools' units are made by the writers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from landcover.config import CanopyRow
from landcover.dataset import DataContractError

ATTRIBUTES = ("cc", "ch", "cbh", "cbd")


@dataclass
class Canopy:
    layers: dict[str, np.ndarray]  # attribute -> (h, w) float32, natural units
    from_rasters: dict[str, int] = field(default_factory=dict)  # attribute -> forest pixels taken from it
    fallback: dict[str, int] = field(default_factory=dict)  # forest pixels the raster missed: table value


def _raster_on_grid(path: str, crs, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    out = np.full(shape, np.nan, dtype=np.float32)
    try:
        with rasterio.open(path) as src:
            reproject(rasterio.band(src, 1), out, src_nodata=src.nodata, dst_transform=transform, dst_crs=crs,
                      dst_nodata=np.nan, resampling=Resampling.bilinear)
    except rasterio.errors.RasterioError as exc:
        raise DataContractError(f"{path}: cannot read the canopy raster: {exc}") from exc
    return out


def canopy_layers(landcover: np.ndarray, table: dict[int, CanopyRow], rasters: dict[str, str], crs,
                  transform: Affine, ) -> Canopy:
    forest = np.isin(landcover, list(table))
    layers = {a: np.zeros(landcover.shape, np.float32) for a in ATTRIBUTES}
    for code, row in table.items():
        where = landcover == code
        for a in ATTRIBUTES:
            layers[a][where] = getattr(row, a)
    result = Canopy(layers)
    for a, path in rasters.items():
        values = _raster_on_grid(path, crs, transform, landcover.shape)
        take = forest & np.isfinite(values)
        layers[a][take] = values[take]
        result.from_rasters[a], result.fallback[a] = int(take.sum()), int((forest & ~take).sum())
    # a base height above the canopy top (mixed sources) is clipped to the top
    np.minimum(layers["cbh"], layers["ch"], out=layers["cbh"])
    return result
