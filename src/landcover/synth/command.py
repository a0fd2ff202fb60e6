"""`landcover synth`: the synthetic dataset (or its manifest only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landcover.config import Params


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.synth.stage import run_synth, run_synth_manifest

    if args.manifest_only:
        result = run_synth_manifest(params, args.out, args.cities, args.tiles, args.seed)
    else:
        def progress(done: int, total: int, what: str) -> None:
            print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)

        result = run_synth(params, args.out, args.cities, args.tiles_per_city, args.size, args.seed,
                           tuple(args.zones.split(",")) if args.zones else None,
                           progress=None if args.quiet else progress)
    print(result.describe())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic Sentinel-2 dataset (or its manifest)")
    p.add_argument("--out", type=Path, required=True, help="dataset root to create")
    p.add_argument("--cities", type=int, help="number of cities (params synth.cities)")
    p.add_argument("--tiles-per-city", type=int, help="tiles per city (params synth.tiles_per_city)")
    p.add_argument("--size", type=int, help="tile side in pixels (params synth.size)")
    p.add_argument("--seed", type=int, help="random seed (params synth.seed)")
    p.add_argument("--zones", help="comma-separated climate zones to draw cities from")
    p.add_argument("--manifest-only", action="store_true",
                   help="write only cities.csv and tiles.csv shaped like the full dataset")
    p.add_argument("--tiles", type=int, help="with --manifest-only: total tiles (params synth.manifest_tiles)")
    p.add_argument("--quiet", action="store_true", help="no per-tile progress")
    p.set_defaults(handler=_run)
