"""`landcover predict`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landcover.config import Params, arg_or
from landcover.errors import report_failures


def landscape_stage(params: Params):
    """The landscape stage, which predict runs after the fuel maps when predict.landscape is on: the
    CLI hands it in (stages do not import one another; an exception listed in docs/architecture.md)."""
    if not params.predict.landscape:
        return None
    from landcover.landscape.stage import run_landscape

    return run_landscape


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.inference.stage import run_predict

    def progress(done: int, total: int, what: str) -> None:
        print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)

    result = run_predict(params, arg_or(args.input, params.predict.input), arg_or(args.out, params.predict.out),
                         args.model, args.split, args.subset, progress=progress, landscape=landscape_stage(params))
    s = result.summary()
    print(f"predict: {s['tiles_written']} written, {s['tiles_skipped']} up to date, {s['tiles_failed']} failed; "
          f"{s['km2']} km2 in {s['seconds']} s with {s['model']} -> {result.out_dir}")
    return report_failures("predict", result.failed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="batch inference: land cover, fuel and confidence COGs per tile")
    p.add_argument("--input", type=Path, help="folder of <city_id>/<tile_id>/ tile folders, or a tiles/ parent")
    p.add_argument("--out", type=Path, help="output folder (params predict.out)")
    p.add_argument("--model", help="model URI (default models:/<mlflow.model_name>@champion)")
    p.add_argument("--split", type=Path, help="optional split file to select tiles from")
    p.add_argument("--subset", choices=("train", "val", "test"), help="with --split: which split to predict")
    p.set_defaults(handler=_run)
