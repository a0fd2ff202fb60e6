"""`landcover mosaic`: Sentinel-2 L2A scenes -> seasonal composites in the tile contract."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landcover.config import Params
from landcover.errors import LandcoverError

REPORT = "mosaic_report.json"


def _targets(args: argparse.Namespace, params: Params):
    from landcover.dataset import City, check_id, read_cities
    from landcover.mosaic.grid import aoi_tiles, city_tiles, read_aoi

    size = args.size or params.mosaic.size
    if args.cities:
        cities = list(read_cities(args.cities).values())
        if args.only:
            wanted = set(args.only.split(","))
            cities = [c for c in cities if c.city_id in wanted]
            if not cities:
                raise LandcoverError(f"{args.cities}: none of the cities {sorted(wanted)}")
        grid = args.grid or params.mosaic.grid
        return [t for c in cities for t in city_tiles(c, grid, size)], cities
    city_id = check_id(args.city_id, "--city-id", "command line")
    area = read_aoi(args.aoi)
    existing = read_cities(args.out / "cities.csv") if (args.out / "cities.csv").is_file() else {}
    zone = args.climate_zone or getattr(existing.get(city_id), "climate_zone", None)
    if zone is None:
        raise LandcoverError(f"--climate-zone is needed for a new city ({city_id} is not in {args.out}/cities.csv)")
    centre = area.centroid
    city = City(city_id, args.name or city_id, args.country or "", centre.y, centre.x, zone)
    return aoi_tiles(area, city_id, size), [city]


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.io_utils import atomic_write_json
    from landcover.mosaic.sources import open_source
    from landcover.mosaic.stage import run_mosaic
    from landcover.progress import item_bars

    if bool(args.cities) == bool(args.aoi):
        raise LandcoverError("give either --cities FILE or --aoi FILE --city-id ID")
    if args.aoi and not args.city_id:
        raise LandcoverError("--aoi needs --city-id")
    year = args.year or params.mosaic.year
    if year is None:
        raise LandcoverError("--year is needed (or params mosaic.year)")
    tiles, cities = _targets(args, params)
    if not tiles:
        raise LandcoverError("no tile to make: the area is empty")
    source = open_source(args.source or params.mosaic.source, params.mosaic)
    with item_bars("step") as progress:
        result = run_mosaic(params, args.out, tiles, cities, source, year, progress=progress)
    s = result.summary()
    report = args.report or args.out / REPORT
    atomic_write_json(report, {**s, "source": source.description, "year": year})
    print(f"mosaic: {s['tiles_written']} written, {s['tiles_skipped']} up to date, {s['tiles_failed']} failed; "
          f"{s['megapixels']} Mpx in {s['seconds']} s -> {args.out} (report {report})")
    for key, notes in sorted(result.warnings.items()):
        print(f"  {key}: {'; '.join(notes)}", file=sys.stderr)
    if result.failed:
        for key, reason in sorted(result.failed.items()):
            print(f"  failed {key}: {reason}", file=sys.stderr)
        print(f"landcover mosaic: error: {len(result.failed)} tile(s) failed: {', '.join(sorted(result.failed))}",
              file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mosaic", help="seasonal cloud-free Sentinel-2 L2A composites in the tile contract",
        description="Build the four season mosaics of every tile from Sentinel-2 L2A scenes (STAC API, local "
        "STAC catalog or SAFE folders): SCL-masked, BOA offset harmonised, median of the clear observations, "
        "with the clear-observation count and a manifest per tile. Finished tiles are skipped on a rerun.")
    where = p.add_argument_group("where (one of)")
    where.add_argument("--cities", type=Path, help="cities.csv: an N x N block of tiles centred on each city")
    where.add_argument("--aoi", type=Path, help="vector file (any CRS): the tiles covering its area")
    p.add_argument("--city-id", help="with --aoi: the city id its tiles go under")
    p.add_argument("--climate-zone", help="with --aoi: the city's climate zone (cities.csv)")
    p.add_argument("--name", help="with --aoi: the city's name")
    p.add_argument("--country", help="with --aoi: the city's country code")
    p.add_argument("--only", help="with --cities: comma-separated city ids to make")
    p.add_argument("--out", type=Path, required=True, help="dataset root to create or complete")
    p.add_argument("--source", help="preset (earth-search, planetary-computer), STAC API URL, STAC catalog / item "
                   "collection file, or folder of .SAFE products (params mosaic.source)")
    p.add_argument("--year", type=int, help="year of the seasons (winter starts in December of the year before)")
    p.add_argument("--grid", type=int, help="tiles per side around each city (params mosaic.grid)")
    p.add_argument("--size", type=int, help="tile side in pixels (params mosaic.size)")
    p.add_argument("--report", type=Path, help=f"run report (default OUT/{REPORT})")
    p.set_defaults(handler=_run)
