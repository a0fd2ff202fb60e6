"""`landcover` console script: one subcommand per stage (BRIEF section 4b).

Each subcommand reads params.yaml for its defaults and calls the same stage function the DVC
stage and the Prefect flow call. Failures end with a one-line reason on stderr and a non-zero
exit; set LANDCOVER_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from landcover.config import Params, load_params
from landcover.errors import LandcoverError

Handler = Callable[[argparse.Namespace, Params], int]


def _parse_set(values: Sequence[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise LandcoverError(f"--set expects KEY=VALUE (for example train.epochs=2), got {item!r}")
        overrides[key.strip()] = yaml.safe_load(raw)
    return overrides


def _progress(done: int, total: int, what: str) -> None:
    print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- synth
def _synth(args: argparse.Namespace, params: Params) -> int:
    from landcover.synth.generate import SynthOptions, generate
    from landcover.synth.manifest import write_manifest

    p = params.synth
    if args.manifest_only:
        cities = args.cities if args.cities is not None else p.manifest_cities
        tiles = args.tiles if args.tiles is not None else p.manifest_tiles
        n_c, n_t = write_manifest(args.out, cities, tiles, args.seed if args.seed is not None else p.seed)
        print(f"manifest: {n_c} cities, {n_t} tiles -> {args.out}")
        return 0
    options = SynthOptions(
        cities=args.cities if args.cities is not None else p.cities,
        tiles_per_city=args.tiles_per_city if args.tiles_per_city is not None else p.tiles_per_city,
        size=args.size if args.size is not None else p.size,
        seed=args.seed if args.seed is not None else p.seed,
        unlabelled_fraction=p.unlabelled_fraction,
        zones=tuple(args.zones.split(",")) if args.zones else None,
    )
    tiles = generate(args.out, options, progress=None if args.quiet else _progress)
    print(f"synthetic dataset: {options.cities} cities, {len(tiles)} tiles of {options.size} px -> {args.out}")
    return 0


def _add_synth(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(handler=_synth)


# ---------------------------------------------------------------- registry of later stages
# Stage modules register their subcommand through `register(sub)`; imported lazily so
# `landcover synth` does not pay for torch or mlflow imports.
STAGE_MODULES = (
    "landcover.validation.command",
    "landcover.split.command",
    "landcover.pack.command",
    "landcover.training.command",
    "landcover.evaluation.command",
    "landcover.promotion.command",
    "landcover.inference.command",
    "landcover.landscape.command",
    "landcover.areas.command",
    "landcover.change.command",
    "landcover.mosaic.command",
    "landcover.labels.command",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="landcover", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params value, for example --set train.epochs=2")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_synth(sub)
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # stage not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        params_path = args.params
        if not params_path.exists() and params_path == Path("params.yaml"):
            params_path = Path(__file__).with_name("default_params.yaml")
        params = load_params(params_path, _parse_set(args.set))
        return int(args.handler(args, params) or 0)
    except KeyboardInterrupt:
        print(f"landcover {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one-line reason for any failure (BRIEF 4b)
        if os.environ.get("LANDCOVER_DEBUG"):
            traceback.print_exc()
        kind = "" if isinstance(exc, LandcoverError) else f"{type(exc).__name__}: "
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"landcover {args.command}: error: {kind}{message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
