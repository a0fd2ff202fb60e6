"""One reference onto one tile grid: vectors rasterised (polygons by pixel centre, lines on top,
touching every pixel), rasters reprojected by mode after the crosswalk, so the class the most
reference pixels agree on wins. Values the crosswalk does not name are counted, then become 0."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from landcover.dataset import DataContractError
from landcover.labels.crosswalk import UNMAPPED, Crosswalk
from landcover.vectors import read_vector

VECTOR_SUFFIXES = {".gpkg", ".shp", ".parquet", ".geoparquet", ".geojson", ".json", ".fgb", ".gml", ".kml", ".sqlite"}


@dataclass(frozen=True)
class Grid:
    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        h, w = self.shape
        west, north = self.transform.c, self.transform.f
        return west, north + h * self.transform.e, west + w * self.transform.a, north


@dataclass
class Burned:
    codes: np.ndarray  # (h, w) uint8 0..10
    unmapped: Counter  # reference value -> features (vectors) or reference pixels (rasters)
    unmapped_pixels: int


def is_vector(path: Path) -> bool:
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def _finish(codes: np.ndarray, unmapped: Counter) -> Burned:
    marked = codes == UNMAPPED
    codes[marked] = 0
    return Burned(codes, unmapped, int(marked.sum()))


def _read_vector(path: Path, grid: Grid):
    frame = read_vector(path, "reference", grid.bounds, grid.crs)
    return frame.to_crs(grid.crs).cx[grid.bounds[0]:grid.bounds[2], grid.bounds[1]:grid.bounds[3]]


def burn_vector(path: Path, grid: Grid, crosswalk: Crosswalk, attribute: str | None,
                lines_all_touched: bool = True) -> Burned:
    frame = _read_vector(Path(path), grid)
    if attribute is None or attribute not in frame.columns:
        columns = ", ".join(c for c in frame.columns if c != frame.geometry.name)
        what = "needs --attribute" if attribute is None else f"has no attribute {attribute!r}"
        raise DataContractError(f"{path}: {what} (its attributes: {columns or 'none'})")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    kinds = frame.geometry.geom_type
    codes = np.zeros(grid.shape, np.uint8)
    unmapped: Counter = Counter()
    # polygons by pixel centre, then lines (roads) over them; points are not areas and are left out.
    # An unmapped polygon leaves its area unlabelled; an unmapped line leaves what is under it alone.
    for part, is_line in ((frame[kinds.str.contains("Polygon")], False),
                          (frame[kinds.str.contains("LineString")], True)):
        shapes = []
        for geometry, value in zip(part.geometry, part[attribute], strict=True):
            code = crosswalk.code(value)
            if code == UNMAPPED:
                unmapped[crosswalk.key(value)] += 1
                if is_line:
                    continue
            shapes.append((geometry, code))
        if shapes:
            rasterize(shapes, out=codes, transform=grid.transform, all_touched=is_line and lines_all_touched)
    return _finish(codes, unmapped)


def burn_raster(path: Path, grid: Grid, crosswalk: Crosswalk) -> Burned:
    """Crosswalk at the reference's resolution, then the mode onto the tile grid."""
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise DataContractError(f"{path}: reference raster has no CRS")
            left, bottom, right, top = transform_bounds(grid.crs, src.crs, *grid.bounds, densify_pts=21)
            window = from_bounds(left, bottom, right, top, src.transform).round_offsets().round_lengths()
            window = Window(window.col_off - 2, window.row_off - 2, window.width + 4, window.height + 4)
            full = Window(0, 0, src.width, src.height)
            try:
                window = window.intersection(full)
            except rasterio.errors.WindowError:
                return Burned(np.zeros(grid.shape, np.uint8), Counter(), 0)  # the reference misses the tile
            values = src.read(1, window=window)
            mapped, unmapped = crosswalk.codes(values, src.nodata)
            codes = np.zeros(grid.shape, np.uint8)
            reproject(mapped, codes, src_transform=src.window_transform(window), src_crs=src.crs,
                      dst_transform=grid.transform, dst_crs=grid.crs, src_nodata=0, dst_nodata=0,
                      resampling=Resampling.mode)
    except rasterio.errors.RasterioError as exc:
        raise DataContractError(f"{path}: cannot read the reference: {exc}") from exc
    return _finish(codes, unmapped)
