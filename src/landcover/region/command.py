"""`landcover map`: a region from an area and a year to a seamless land cover and fuel map on the
EEA reference grid (docs/regions.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landcover.config import Params
from landcover.errors import report_failures


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.region.report import plan_lines
    from landcover.region.stage import PLAN, SUMMARY, run_map

    def progress(step: str, done: int, total: int, what: str) -> None:
        print(f"[{step} {done}/{total}] {what}", file=sys.stderr, flush=True)

    result = run_map(params, args.aoi, args.year, args.out, source=args.source, model_uri=args.model,
                     climate_zone=args.climate_zone, climate_zones_file=args.climate_zones, zones_file=args.zones,
                     dem=args.dem, name=args.name, plan_only=args.plan, progress=progress)
    lines = plan_lines(result.plan)
    print("\n  ".join(lines))
    if args.plan:
        print(f"plan: {result.out / PLAN}")
        return 0
    cells = result.steps["assemble"]["cells"]
    print(f"map: {sum(v == 'written' for v in cells.values())} cells written, "
          f"{sum(v == 'skipped' for v in cells.values())} up to date -> {result.out / 'eea'} "
          f"(landcover.vrt, fuel.vrt, confidence.vrt); summary {result.out / SUMMARY}; {result.seconds:.0f} s")
    for warning in result.warnings:
        print(f"  {warning}", file=sys.stderr)
    if "statistics" in result.steps:
        print(f"statistics: {result.out / result.steps['statistics']['file']}")
    return report_failures("map", result.failed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="a region: area + year -> seamless land cover and fuel maps on the EEA grid",
                       description="Plan the tiles of an area in each UTM zone, composite Sentinel-2 L2A scenes, "
                       "predict with the champion model, and assemble the maps on the EEA reference grid "
                       "(EPSG:3035, 10 m) cut into its 100 km cells, with VRTs, styles and statistics. Resumes.")
    p.add_argument("--aoi", type=Path, required=True, help="vector file (any CRS): the region")
    p.add_argument("--year", type=int, help="year of the seasons (params mosaic.year)")
    p.add_argument("--out", type=Path, help="output folder (params map.out)")
    p.add_argument("--name", help="the region's id (params map.name)")
    p.add_argument("--source", help="scene source, as `landcover mosaic --source` (params mosaic.source)")
    p.add_argument("--model", help="model URI (default models:/<mlflow.model_name>@champion)")
    p.add_argument("--climate-zone", help="one climate zone for the whole region (params map.climate_zone)")
    p.add_argument("--climate-zones", type=Path,
                   help="vector of climate zones (attribute params map.climate_zone_attribute): the fuel "
                   "crosswalk follows each pixel's zone")
    p.add_argument("--zones", type=Path, help="polygons to give km² per class and fuel model for (attribute "
                   "params map.zones_attribute)")
    p.add_argument("--dem", help="DEM file or URL: also the FlamMap / ELMFIRE landscape of every cell")
    p.add_argument("--plan", action="store_true", help="only plan: print and write plan.json, read no pixel")
    p.set_defaults(handler=_run)
