"""`landcover areas`."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import Params, arg_or
from landcover.errors import report_failures


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.areas.stage import SUMMARY, run_areas

    out = arg_or(args.out, params.areas.out)
    result = run_areas(params, arg_or(args.fuelmaps, params.predict.out), out, args.input)
    print(f"area maps: {len(result.written)} written, {len(result.skipped)} up to date -> {out} "
          f"(summary {Path(out) / SUMMARY})")
    for city, maps in sorted(result.split_by_zone.items()):
        print(f"  {city}: tiles in several UTM zones, one map per zone: {', '.join(maps)}")
    for tile, reason in sorted(result.left_out.items()):
        print(f"  left out {tile}: {reason}")
    return report_failures("areas", result.failed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "areas", help="one seamless map per city: VRT and COG of land cover, fuel and confidence, styled",
        description="For every city of a batch-inference output folder: a VRT over its tiles and a "
        "Cloud-Optimized GeoTIFF of the whole area, for land cover, fuel and confidence, with colour "
        "tables, class names and QGIS/SLD styles. Tiles in another UTM zone make their own map "
        "(<city>_<epsg>); tiles off the grid are reported.")
    p.add_argument("--fuelmaps", type=Path, help="batch-inference output folder (params predict.out)")
    p.add_argument("--out", type=Path, help="output folder (params areas.out)")
    p.add_argument("--input", type=Path, help="the tiles' dataset, for the summer composite in the quicklooks")
    p.set_defaults(handler=_run)
