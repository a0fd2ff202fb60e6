"""`landcover pack`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landcover.config import Params, arg_or


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.pack.stage import run_pack

    def progress(done: int, total: int, key: str) -> None:
        print(f"packed [{done}/{total}] {key}", file=sys.stderr, flush=True)

    result = run_pack(params, arg_or(args.data, params.data.root), arg_or(args.split, params.split.out), args.out,
                      args.metrics, progress=progress)
    tiles = ", ".join(f"{n} {s}" for s, n in result.tiles.items())
    print(f"packed {tiles} tiles into {result.out}: {result.bytes / 1e6:.1f} MB "
          f"({result.bytes / max(result.source_bytes, 1):.2f}x the GeoTIFFs' {result.source_bytes / 1e6:.1f} MB)"
          + f" in {result.seconds:.1f} s"
          + (f"; {result.resumed} tiles kept from an interrupted build" if result.resumed else ""))
    print(f"  figures in {result.metrics_path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="pack the split's train and val tiles into the training store (zarr v3)")
    p.add_argument("--data", type=Path, help="dataset root (params data.root)")
    p.add_argument("--split", type=Path, help="split file (params split.out)")
    p.add_argument("--out", type=Path, help="store folder (params pack.out)")
    p.add_argument("--metrics", type=Path,
                   help="store figures JSON (default OUT with .json with --out, else params pack.metrics)")
    p.set_defaults(handler=_run)
