"""`landcover evaluate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landcover.candidate import candidate_path, read_candidate
from landcover.config import Params, arg_or
from landcover.errors import LandcoverError
from landcover.outputs import side_output


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.evaluation.stage import run_evaluation

    run_file = candidate_path(params.train.out, args.run)
    model_uri, run_id = args.model, None
    if model_uri is None:
        if not run_file.is_file():
            raise LandcoverError(f"{run_file}: no trained candidate (run `landcover train` or pass --model)")
        candidate = read_candidate(run_file)
        model_uri, run_id = candidate.model_uri, candidate.run_id
    metrics_copy = side_output(args.metrics, args.out, lambda _: None, params.evaluate.metrics)
    result = run_evaluation(
        params, arg_or(args.data, params.data.root), arg_or(args.split, params.split.out), model_uri,
        args.out, metrics_copy, log_to_run=run_id,
        progress=lambda d, t, w: print(f"[{d}/{t}] {w}", file=sys.stderr, flush=True),
    )
    m = result.metrics
    print(f"test mIoU {m['miou']:.4f}, accuracy {m['accuracy']:.4f} over {m['tiles']} tiles, {m['pixels']} pixels")
    for name, v in m["iou"].items():
        print(f"  IoU {name:<20} {v:.4f}")
    print("  without a season: " + ", ".join(f"{k} {v:.4f}" for k, v in m["missing_season"].items()))
    print(f"  calibration: ECE {m['ece']:.4f} (before temperature scaling {m['ece_uncalibrated']:.4f}, "
          f"T = {m['temperature']:.3f}){'; with D4 test-time augmentation' if m['tta'] else ''}")
    print(f"wrote {result.out_dir}" + (f" and {metrics_copy}" if metrics_copy else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="whole-tile test evaluation (sliding window, as in batch inference)")
    p.add_argument("--data", type=Path, help="dataset root (params data.root)")
    p.add_argument("--split", type=Path, help="split file (params split.out)")
    p.add_argument("--model", help="model URI (default: the candidate of models/candidate/run.json)")
    p.add_argument("--run", type=Path, help="training run file (default <train.out>/run.json)")
    p.add_argument("--out", type=Path, help="report folder (params evaluate.out)")
    p.add_argument("--metrics", type=Path, help="a copy of the metrics JSON for DVC (default: none with --out, "
                   "whose metrics.json holds them; else params evaluate.metrics)")
    p.set_defaults(handler=_run)
