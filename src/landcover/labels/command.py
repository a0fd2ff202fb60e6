"""`landcover labels`: reference maps -> `label.tif` on every tile's grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landcover.config import Params, arg_or
from landcover.errors import report_failures

REPORT = "labels_report.json"


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.io_utils import atomic_write_json
    from landcover.labels.stage import run_labels

    result = run_labels(params, args.data, args.reference, args.attribute, args.preset, args.overwrite)
    s = result.summary()
    report = arg_or(args.report, args.data / REPORT)
    atomic_write_json(report, s)
    print(f"labels: {s['tiles_written']} written, {s['tiles_skipped']} up to date, {s['tiles_failed']} failed; "
          f"{s['unmapped_pixels']} pixels of unmapped reference values set to 0 (report {report})")
    for value, n in list(result.unmapped.most_common())[:20]:
        print(f"  unmapped value {value!r}: {n}", file=sys.stderr)
    return report_failures("labels", result.failed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "labels", help="reference land cover (vectors or rasters) as label.tif on every tile's grid",
        description="Write label.tif for every tile of a dataset from reference vectors (GeoPackage, Shapefile, "
        "GeoParquet; any CRS) or rasters (ESA WorldCover, CORINE; reprojected by mode) through a crosswalk "
        "(params labels.crosswalk, or --preset). Several --reference are used in order: a later one only "
        "fills pixels the earlier ones left unlabelled.")
    p.add_argument("--data", type=Path, required=True, help="dataset root (holding tiles/)")
    p.add_argument("--reference", type=Path, action="append", required=True,
                   help="reference vector or raster file (repeatable, first wins)")
    p.add_argument("--attribute", help="vector attribute with the class value (params labels.attribute)")
    p.add_argument("--preset", help="crosswalk preset: worldcover, clc, clc-raster (params labels.preset)")
    p.add_argument("--overwrite", action="store_true", help="replace label.tif files this stage did not write")
    p.add_argument("--report", type=Path, help=f"run report (default DATA/{REPORT})")
    p.set_defaults(handler=_run)
