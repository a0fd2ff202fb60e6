"""`landcover train`."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import Params, arg_or


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.training.stage import run_train

    result = run_train(params, arg_or(args.data, params.data.root), arg_or(args.split, params.split.out), args.out,
                       fast_dev_run=args.fast_dev_run, metrics_path=args.metrics, curves_path=args.curves,
                       store=args.store)
    if result.rank:  # another DDP rank: rank zero reports the run
        return 0
    print(f"trained: MLflow run {result.run_id}, model {result.model_uri}")
    print(f"  wrote {result.out_dir}, curves {result.curves_path}"
          + (f", metrics {result.metrics_path}" if result.metrics_path else ""))
    for key in ("val_miou", "val_accuracy"):
        if key in result.metrics:
            print(f"  {key} = {result.metrics[key]:.4f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the segmentation model (logged to MLflow)")
    p.add_argument("--data", type=Path, help="dataset root (params data.root)")
    p.add_argument("--split", type=Path, help="split file (params split.out)")
    p.add_argument("--out", type=Path, help="model output folder (params train.out)")
    p.add_argument("--store", help="packed store, path or fsspec URL (params pack.out; with train.input: store)")
    p.add_argument("--metrics", type=Path,
                   help="final metrics JSON (default OUT/train_metrics.json with --out, else params train.metrics)")
    p.add_argument("--curves", type=Path,
                   help="per-epoch curves CSV (default OUT/train_curves.csv with --out, else params train.curves)")
    p.add_argument("--fast-dev-run", action="store_true", help="one batch of train and val: a smoke test")
    p.set_defaults(handler=_run)
