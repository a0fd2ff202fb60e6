"""Which tiles a region needs, where its maps go on the European grid, and what it will cost.

The area is split by the UTM zones Sentinel-2 delivers (`geo.s2_utm_zone`: the Norway and
Svalbard exceptions included); each zone's part is tiled on that zone's 10 m grid, as
`landcover mosaic --aoi` tiles an area, under one tile folder per zone (`<name>_<zone><N|S>`). The
maps are assembled once, at the end, on the EEA reference grid (ETRS89-LAEA, EPSG:3035, pixel edges on
multiples of 10 m), cut into its 100 km cells.

The plan counts before any pixel is read: tiles per zone, scenes per season from the catalogue, the
bytes those scenes hold over the tiles, and the core-hours and output size at the rates `make bench`
measures (`map.rates`, docs/regions.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from landcover.bands import SEASONS
from landcover.config import Params
from landcover.dataset import City
from landcover.errors import LandcoverError
from landcover.geo import TileGrid, snap, utm_zone_areas
from landcover.mosaic.grid import aoi_tiles
from landcover.mosaic.sources import season_window

EEA_EPSG = 3035
RESOLUTION = 10.0


@dataclass(frozen=True)
class Cell:
    """One EEA grid cell's part of the region: its name and its 10 m pixel grid."""

    name: str  # e.g. 100kmE43N32: the cell's lower left corner in units of its size
    west: float
    north: float
    width: int
    height: int

    @property
    def transform(self):
        from affine import Affine

        return Affine(RESOLUTION, 0, self.west, 0, -RESOLUTION, self.north)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.west, self.north - RESOLUTION * self.height, self.west + RESOLUTION * self.width, self.north)


@dataclass
class RegionPlan:
    name: str
    tiles: list[TileGrid]
    cities: list[City]
    cells: list[Cell]
    extent: tuple[float, float, float, float]  # EPSG:3035, on the 10 m grid
    scenes: dict[str, dict[str, int]] = field(default_factory=dict)  # tile key -> season -> scenes found
    scene_bytes: dict[str, int | None] = field(default_factory=dict)  # tile key -> bytes over the tile

    def summary(self, p: Params) -> dict:
        rates = p.map.rates
        by_zone: dict[str, int] = {}
        for tile in self.tiles:
            by_zone[f"EPSG:{tile.epsg}"] = by_zone.get(f"EPSG:{tile.epsg}", 0) + 1
        mosaic_s = predict_s = 0.0
        for tile in self.tiles:
            mpx = tile.width * tile.height / 1e6
            for season in SEASONS:
                n = self.scenes.get(tile.key, {}).get(season, 0)
                mosaic_s += mpx * (rates.mosaic_s_per_mpx + rates.mosaic_s_per_mpx_per_scene * n) if n else 0.0
            predict_s += mpx * rates.predict_s_per_mpx
        region_px = sum(c.width * c.height for c in self.cells)
        known = [b for b in self.scene_bytes.values() if b is not None]
        seasons = {s: sum(v.get(s, 0) for v in self.scenes.values()) for s in SEASONS}
        return {
            "name": self.name, "tiles": len(self.tiles), "tiles_per_zone": by_zone,
            "tile_megapixels": round(sum(t.width * t.height for t in self.tiles) / 1e6, 3),
            "scenes_per_season": seasons,  # summed over tiles: a scene over two tiles counts twice
            "scene_gb_to_read": round(sum(known) / 1e9, 3) if known else None,
            "scene_bytes_unknown_tiles": sum(b is None for b in self.scene_bytes.values()),
            "core_hours": {"mosaic": round(mosaic_s / 3600, 4), "predict": round(predict_s / 3600, 4),
                           "total": round((mosaic_s + predict_s) / 3600, 4)},
            "work_gb": round(sum(t.width * t.height for t in self.tiles) * rates.work_bytes_per_px / 1e9, 3),
            "eea_cells": [c.name for c in self.cells], "eea_extent_3035": list(self.extent),
            "output_megapixels": round(region_px / 1e6, 3),
            "output_gb": round(region_px * rates.output_bytes_per_px / 1e9, 3),
            "rates": rates.model_dump(),
        }


def _to_3035(geometry_lonlat):
    from pyproj import Transformer
    from shapely.ops import transform

    return transform(Transformer.from_crs(4326, EEA_EPSG, always_xy=True).transform, geometry_lonlat)


def eea_cells(area_3035, cell_km: int) -> tuple[list[Cell], tuple[float, float, float, float]]:
    """The cells of the EEA grid the area touches, each cut to the area's bounds on the 10 m grid."""
    from shapely.geometry import box

    size = cell_km * 1000.0
    minx, miny, maxx, maxy = area_3035.bounds
    extent = (snap(minx, RESOLUTION, "floor"), snap(miny, RESOLUTION, "floor"),
              snap(maxx, RESOLUTION, "ceil"), snap(maxy, RESOLUTION, "ceil"))
    cells = []
    for cy in range(math.floor(extent[1] / size), math.ceil(extent[3] / size)):
        for cx in range(math.floor(extent[0] / size), math.ceil(extent[2] / size)):
            west, south = max(cx * size, extent[0]), max(cy * size, extent[1])
            east, north = min((cx + 1) * size, extent[2]), min((cy + 1) * size, extent[3])
            if east <= west or north <= south or not box(west, south, east, north).intersects(area_3035):
                continue
            cells.append(Cell(f"{cell_km}kmE{cx}N{cy}", west, north, round((east - west) / RESOLUTION),
                              round((north - south) / RESOLUTION)))
    return cells, extent


def plan_region(p: Params, area_lonlat, zone_at, name: str | None = None) -> RegionPlan:
    """The tiles (per UTM zone) and EEA cells of an area given in longitude and latitude; `zone_at(lon,
    lat)` names the climate zone of each UTM zone's tile folder (cities.csv), at its part's centre."""
    mp = p.map
    name = name or mp.name
    tiles, cities = [], []
    for zone in range(1, 61):
        part = area_lonlat.intersection(utm_zone_areas(zone))
        if part.is_empty or part.area == 0:
            continue
        for north in (True, False):
            part_h = part.intersection(_hemisphere(north))
            if part_h.is_empty or part_h.area == 0:
                continue
            epsg = (32600 if north else 32700) + zone
            city_id = f"{name}_{zone:02d}{'N' if north else 'S'}"
            zone_tiles = aoi_tiles(part_h, city_id, mp.tile_size, epsg=epsg)
            if zone_tiles:
                centre = part_h.centroid
                tiles += zone_tiles
                cities.append(City(city_id, f"{name} UTM {zone}{'N' if north else 'S'}", "", centre.y, centre.x,
                                   zone_at(centre.x, centre.y)))
    if not tiles:
        raise LandcoverError("the area covers no tile")
    cells, extent = eea_cells(_to_3035(area_lonlat), mp.cell_km)
    return RegionPlan(name, tiles, cities, cells, extent)


def _hemisphere(north: bool):
    from shapely.geometry import box

    return box(-180, 0, 180, 90) if north else box(-180, -90, 180, 0)


def count_scenes(plan: RegionPlan, source, year: int, max_cloud: float, seasons: dict) -> None:
    """Search the catalogue for every tile and season (as the mosaic will), and estimate the bytes the
    scenes hold over each tile: a scene's files in proportion to the share of its footprint the tile
    covers (unknown where the catalogue does not give sizes)."""
    from shapely.geometry import box, shape

    for tile in plan.tiles:
        found, total = {}, 0
        unknown = False
        bbox = tile.lonlat_bounds()
        for season in SEASONS:
            items = source.search(bbox, *season_window(year, seasons[season]), max_cloud)
            found[season] = len(items)
            for item in items:
                size = _item_bytes(item)
                if size is None:
                    unknown = True
                    continue
                footprint = shape(item.geometry) if item.geometry else box(*item.bbox)
                share = min(1.0, box(*bbox).area / footprint.area) if footprint.area else 1.0
                total += int(size * share)
        plan.scenes[tile.key] = found
        plan.scene_bytes[tile.key] = None if unknown else total


def _item_bytes(item) -> int | None:
    total = 0
    for asset in item.assets.values():
        size = asset.extra_fields.get("file:size")
        if size is None:
            href = asset.href
            if href.startswith("/vsizip/"):  # a zipped SAFE: the zip's size counts once, below
                return Path(href.removeprefix("/vsizip/").split(".zip")[0] + ".zip").stat().st_size
            path = Path(href)
            if not path.is_file():
                return None
            size = path.stat().st_size
        total += int(size)
    return total
