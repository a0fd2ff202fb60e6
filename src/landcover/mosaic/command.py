"""`landcover mosaic`: Sentinel-2 L2A scenes -> seasonal composites in the tile contract."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landcover.config import Params, arg_or
from landcover.errors import report_failures

REPORT = "mosaic_report.json"


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.io_utils import atomic_write_json
    from landcover.mosaic.stage import run_mosaic
    from landcover.progress import item_bars

    with item_bars("step") as progress:
        result = run_mosaic(params, args.out, args.year, cities_file=args.cities,
                            only=args.only.split(",") if args.only else None, aoi=args.aoi, city_id=args.city_id,
                            climate_zone=args.climate_zone, name=args.name, country=args.country,
                            source=args.source, size=args.size, grid=args.grid, progress=progress)
    s = result.summary()
    report = arg_or(args.report, args.out / REPORT)
    atomic_write_json(report, {**s, "source": result.source, "year": result.year})
    print(f"mosaic: {s['tiles_written']} written, {s['tiles_skipped']} up to date, {s['tiles_failed']} failed; "
          f"{s['megapixels']} Mpx in {s['seconds']} s -> {args.out} (report {report})")
    for key, notes in sorted(result.warnings.items()):
        print(f"  {key}: {'; '.join(notes)}", file=sys.stderr)
    return report_failures("mosaic", result.failed)


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
