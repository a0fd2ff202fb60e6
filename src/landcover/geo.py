"""Map grids shared by the stages that make rasters: UTM zones and the 10 m tile grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from landcover.bands import PIXEL_SIZE_M


def utm_epsg(lat: float, lon: float) -> int:
    """EPSG code of the WGS84 UTM zone holding a point (326xx north, 327xx south)."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class TileGrid:
    """One output tile: its ids and its pixel grid (north-up, 10 m, aligned to multiples of 10 m)."""

    city_id: str
    tile_id: str
    epsg: int
    west: float
    north: float
    width: int
    height: int
    resolution: float = PIXEL_SIZE_M

    @property
    def key(self) -> str:
        return f"{self.city_id}/{self.tile_id}"

    @property
    def crs(self) -> CRS:
        return CRS.from_epsg(self.epsg)

    @property
    def transform(self) -> Affine:
        return Affine(self.resolution, 0.0, self.west, 0.0, -self.resolution, self.north)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in the tile's CRS."""
        return (self.west, self.north - self.height * self.resolution,
                self.west + self.width * self.resolution, self.north)

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees, densified so the whole tile is inside."""
        return tuple(transform_bounds(self.crs, "EPSG:4326", *self.bounds, densify_pts=21))

    def centre_lon(self) -> float:
        west, _, east, _ = self.lonlat_bounds()
        return (west + east) / 2

    def describe(self) -> dict:
        return {"crs": f"EPSG:{self.epsg}", "transform": list(self.transform)[:6],
                "width": self.width, "height": self.height}


SNAP_TOLERANCE = 1e-3  # of a pixel: reprojection round trips leave bounds a hair off the grid


def snap(value: float, step: float = PIXEL_SIZE_M, how: str = "round") -> float:
    """A coordinate on the grid of multiples of `step` (the 10 m grid of every UTM zone); floor and
    ceil forgive a thousandth of a pixel, so an edge already on the grid stays where it is."""
    steps = value / step
    if how == "floor":
        return float(math.floor(steps + SNAP_TOLERANCE) * step)
    if how == "ceil":
        return float(math.ceil(steps - SNAP_TOLERANCE) * step)
    return float(round(steps) * step)


# Sentinel-2's tiles (MGRS) follow UTM with two exceptions: zone 32 is widened over south-west Norway,
# and over Svalbard only the odd zones 31, 33, 35 and 37 exist, 9 or 12 degrees wide.
UTM_EXCEPTIONS = (((3.0, 56.0, 12.0, 64.0), 32), ((0.0, 72.0, 9.0, 84.0), 31), ((9.0, 72.0, 21.0, 84.0), 33),
                  ((21.0, 72.0, 33.0, 84.0), 35), ((33.0, 72.0, 42.0, 84.0), 37))


def s2_utm_zone(lat: float, lon: float) -> int:
    """The UTM zone Sentinel-2 products of a point are in (the Norway and Svalbard exceptions included)."""
    for (west, south, east, north), zone in UTM_EXCEPTIONS:
        if west <= lon < east and south <= lat < north:
            return zone
    return min(int((lon + 180) // 6) + 1, 60)


def utm_zone_areas(zone: int):
    """Where a zone applies, in longitude and latitude: one shapely geometry (both hemispheres)."""
    from shapely.geometry import box
    from shapely.ops import unary_union

    west = -180.0 + 6 * (zone - 1)
    area = box(west, -80.0, west + 6.0, 84.0)
    area = area.difference(unary_union([box(*b) for b, _ in UTM_EXCEPTIONS]))
    return unary_union([area, *[box(*b) for b, z in UTM_EXCEPTIONS if z == zone]])
