"""The vector layers a region job reads: the area, the climate zones the fuel crosswalk follows, and
the polygons its statistics are given for (administrative units, say). Any format GDAL reads, any
CRS; a problem is one line naming the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landcover.dataset import CLIMATE_ZONES, DataContractError
from landcover.vectors import read_vector


def shapes_in(frame, crs) -> list[tuple[object, int]]:
    """(geometry, index) pairs of a layer held in EPSG:4326, in `crs`. Edges are densified first (every
    0.001 deg, about 100 m): a long straight edge in degrees (a meridian as a zone border) is a curve in
    a projected grid, and reprojecting only its ends would move the border by up to kilometres."""
    geometries = frame.geometry.segmentize(0.001).to_crs(crs)
    return [(g, int(i)) for g, i in zip(geometries, frame["index"], strict=True)]


def _attribute(frame, path: Path, attribute: str, what: str):
    if attribute not in frame.columns:
        raise DataContractError(f"{path}: the {what} has no attribute {attribute!r} (it has "
                                f"{', '.join(c for c in frame.columns if c != 'geometry')})")
    return frame[attribute].astype(str).str.strip()


@dataclass
class ClimateZones:
    """The climate zone of every pixel: from a zones layer (rasterised on each grid), else one zone."""

    names: tuple[str, ...]  # index 1.. in the rasters; 0 = outside every polygon
    frame: object | None  # GeoDataFrame in EPSG:4326 with an integer column "index"
    fallback: str | None  # the zone where no polygon lies (params map.climate_zone), else the default row
    _projected: dict = field(default_factory=dict, repr=False, compare=False)  # CRS -> shapes

    @classmethod
    def single(cls, zone: str) -> ClimateZones:
        return cls((zone,), None, zone)

    @classmethod
    def read(cls, path: Path, attribute: str, fallback: str | None = None) -> ClimateZones:
        frame = read_vector(path, "climate zones layer")
        values = _attribute(frame, path, attribute, "climate zones layer").str.lower()
        unknown = sorted(set(values) - set(CLIMATE_ZONES))
        if unknown:
            raise DataContractError(f"{path}: unknown climate zone(s) {', '.join(unknown)} in {attribute!r} "
                                    f"(known: {', '.join(CLIMATE_ZONES)})")
        names = tuple(sorted(set(values)))
        frame = frame.to_crs(4326).assign(index=[names.index(v) + 1 for v in values])[["index", "geometry"]]
        return cls(names, frame, fallback)

    def at(self, lon: float, lat: float) -> str:
        """The zone at a point (a tile folder's city row), the fallback or the nearest polygon's."""
        if self.frame is None:
            return self.names[0]
        from shapely.geometry import Point

        point = Point(lon, lat)
        inside = self.frame[self.frame.contains(point)]
        if len(inside):
            return self.names[int(inside["index"].iloc[0]) - 1]
        if self.fallback:
            return self.fallback
        nearest = self.frame.distance(point).idxmin()
        return self.names[int(self.frame.loc[nearest, "index"]) - 1]

    def rasterize(self, crs, transform, shape: tuple[int, int]) -> np.ndarray:
        """(h, w) uint8: 1 + the index of the zone of each pixel (by its centre), 0 outside every zone."""
        if self.frame is None:
            return np.ones(shape, np.uint8)
        from rasterio.features import rasterize

        return rasterize(self._shapes(crs), out_shape=shape, transform=transform, fill=0, dtype="uint8")

    def _shapes(self, crs) -> list[tuple[object, int]]:
        key = str(crs)
        if key not in self._projected:
            self._projected[key] = shapes_in(self.frame, crs)
        return self._projected[key]


@dataclass
class StatZones:
    """The polygons the statistics are given for, each with its name."""

    names: list[str]
    frame: object  # GeoDataFrame, EPSG:4326, column "index" (1..)
    _projected: dict = field(default_factory=dict, repr=False, compare=False)  # CRS -> shapes

    @classmethod
    def read(cls, path: Path, attribute: str) -> StatZones:
        frame = read_vector(path, "zones layer")
        names = list(_attribute(frame, path, attribute, "zones layer"))
        return cls(names, frame.to_crs(4326).assign(index=range(1, len(names) + 1))[["index", "geometry"]])

    def rasterize(self, crs, transform, shape: tuple[int, int]) -> np.ndarray:
        """(h, w) int32: 1 + the polygon of each pixel (by its centre; the first where two overlap), 0 none."""
        from rasterio.features import rasterize

        key = str(crs)
        if key not in self._projected:
            self._projected[key] = shapes_in(self.frame, crs)
        return rasterize(reversed(self._projected[key]), out_shape=shape, transform=transform, fill=0,
                         dtype="int32")
