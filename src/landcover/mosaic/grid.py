"""Where the tiles go: an N x N block centred on each city, or the tiles that cover an area."""

from __future__ import annotations

import math
from pathlib import Path

from landcover.dataset import City, DataContractError, check_id, read_cities
from landcover.errors import LandcoverError
from landcover.geo import TileGrid, snap, utm_epsg
from landcover.vectors import read_vector


def tile_id(row: int, col: int) -> str:
    return f"r{row:02d}c{col:02d}"


def city_tiles(city: City, grid: int, size: int, resolution: float = 10.0) -> list[TileGrid]:
    """`grid` x `grid` tiles of `size` px centred on the city, in its UTM zone, on the 10 m grid."""
    from pyproj import Transformer

    epsg = utm_epsg(city.lat, city.lon)
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(city.lon, city.lat)
    span = grid * size * resolution
    west, north = snap(x - span / 2, resolution), snap(y + span / 2, resolution)
    return [TileGrid(city.city_id, tile_id(r, c), epsg, west + c * size * resolution,
                     north - r * size * resolution, size, size, resolution)
            for r in range(grid) for c in range(grid)]


def read_aoi(path: Path):
    """The area of a vector file (any format GDAL reads, any CRS) as one geometry in EPSG:4326."""
    frame = read_vector(path, "AOI")
    geometry = frame.to_crs(4326).geometry.union_all()
    if geometry.is_empty or geometry.area == 0:
        raise DataContractError(f"{path}: AOI has no area (polygons are needed)")
    return geometry


def aoi_tiles(geometry_lonlat, city_id: str, size: int, resolution: float = 10.0,
              epsg: int | None = None) -> list[TileGrid]:
    """Tiles of `size` px covering the area on the 10 m grid of its UTM zone (`epsg`, default the
    zone of its centroid). The last row and column are cut to the area's bounds, and tiles that miss
    the area are left out."""
    from pyproj import Transformer
    from shapely.geometry import box
    from shapely.ops import transform

    centre = geometry_lonlat.centroid
    epsg = epsg or utm_epsg(centre.y, centre.x)
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True).transform
    area = transform(to_utm, geometry_lonlat)
    minx, miny, maxx, maxy = area.bounds
    west, south = snap(minx, resolution, "floor"), snap(miny, resolution, "floor")
    east, north = snap(maxx, resolution, "ceil"), snap(maxy, resolution, "ceil")
    width_px, height_px = round((east - west) / resolution), round((north - south) / resolution)
    tiles = []
    for r in range(math.ceil(height_px / size)):
        for c in range(math.ceil(width_px / size)):
            w, h = min(size, width_px - c * size), min(size, height_px - r * size)
            tile = TileGrid(city_id, tile_id(r, c), epsg, west + c * size * resolution,
                            north - r * size * resolution, w, h, resolution)
            if box(*tile.bounds).intersection(area).area > 0:
                tiles.append(tile)
    return tiles


def plan_targets(out: Path, size: int, grid: int, cities_file: Path | None = None, only: list[str] | None = None,
                 aoi: Path | None = None, city_id: str | None = None, climate_zone: str | None = None,
                 name: str | None = None, country: str | None = None) -> tuple[list[TileGrid], list[City]]:
    """The tiles to make and their cities: every city of a cities.csv (or those in `only`), or the
    area of a vector file under one city id (its climate zone given, or already in OUT/cities.csv)."""
    if (cities_file is None) == (aoi is None):
        raise LandcoverError("give either --cities FILE or --aoi FILE --city-id ID")
    if cities_file is not None:
        cities = list(read_cities(cities_file).values())
        if only:
            cities = [c for c in cities if c.city_id in set(only)]
            if not cities:
                raise LandcoverError(f"{cities_file}: none of the cities {sorted(only)}")
        return [t for c in cities for t in city_tiles(c, grid, size)], cities
    if not city_id:
        raise LandcoverError("--aoi needs --city-id")
    check_id(city_id, "--city-id", "command line")
    area = read_aoi(aoi)
    known = read_cities(Path(out) / "cities.csv") if (Path(out) / "cities.csv").is_file() else {}
    zone = climate_zone or getattr(known.get(city_id), "climate_zone", None)
    if zone is None:
        raise LandcoverError(f"--climate-zone is needed for a new city ({city_id} is not in {out}/cities.csv)")
    centre = area.centroid
    tiles = aoi_tiles(area, city_id, size)
    if not tiles:
        raise LandcoverError(f"{aoi}: no tile covers the area")
    return tiles, [City(city_id, name or city_id, country or "", centre.y, centre.x, zone.lower())]
