"""`landcover landscape`: fuel maps + DEM -> FlamMap / FARSITE `.lcp` and ELMFIRE layers."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import Params, arg_or
from landcover.errors import LandcoverError, report_failures


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.landscape.stage import run_landscape

    rasters = dict(params.landscape.canopy_rasters)
    for item in args.canopy_raster:
        attribute, sep, path = item.partition("=")
        if not sep or attribute not in ("cc", "ch", "cbh", "cbd"):
            raise LandcoverError(f"--canopy-raster expects cc|ch|cbh|cbd=FILE, got {item!r}")
        rasters[attribute] = path
    if rasters != params.landscape.canopy_rasters:
        landscape = params.landscape.model_copy(update={"canopy_rasters": rasters})
        params = params.model_copy(update={"landscape": landscape})
    out = arg_or(args.out, params.landscape.out)
    result = run_landscape(params, arg_or(args.fuelmaps, params.predict.out), out, args.dem)
    s = result.summary()
    print(f"landscape: {s['tiles_written']} written, {s['tiles_skipped']} up to date, {s['tiles_failed']} failed "
          f"in {s['seconds']} s -> {out}")
    return report_failures("landscape", result.failed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "landscape", help="FlamMap / FARSITE landscape (.lcp) and ELMFIRE layers from fuel maps and a DEM",
        description="For every batch-inference tile: elevation, slope and aspect from the DEM (any CRS, reprojected "
        "bilinearly onto the tile grid), the FBFM40 fuel model, and canopy cover, height, base height and bulk "
        "density (params fuel.canopy per climate zone, or rasters), written as landscape.lcp (+ .prj) and "
        "elmfire/*.tif in the tools' units. See docs/landscape.md.")
    p.add_argument("--fuelmaps", type=Path, help="batch-inference output folder (params predict.out)")
    p.add_argument("--dem", help="DEM file or URL, any CRS (params landscape.dem)")
    p.add_argument("--out", type=Path, help="output folder (params landscape.out)")
    p.add_argument("--canopy-raster", action="append", default=[], metavar="ATTR=FILE",
                   help="replace a canopy attribute on forest pixels by a raster: cc (%%), ch or cbh (m), cbd (kg/m3)")
    p.set_defaults(handler=_run)
