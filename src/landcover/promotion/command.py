"""`landcover promote`: exit 0 whether the candidate becomes champion or challenger (a refused
candidate is a valid outcome); non-zero only for errors."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import Params


def champion_evaluation():
    """What promotion needs to score a champion on the current split: the evaluate stage, without
    its missing-season passes (the comparison uses the full-input scores). The one place promotion
    meets another stage: the CLI hands it in (an exception listed in docs/architecture.md)."""
    import functools

    from landcover.evaluation.stage import run_evaluation

    return functools.partial(run_evaluation, missing_seasons=False)


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.promotion.stage import run_promote  # heavy imports only when used

    result = run_promote(params, args.run, args.metrics, evaluate_fn=champion_evaluation(), data_root=args.data,
                         split_file=args.split, out=args.out)
    created = "registered" if result.created else "found (already registered)"
    print(f"{result.name} version {result.version} {created}; alias: {result.alias}")
    if result.promoted:
        print(f"promoted: models:/{result.name}@champion is now version {result.version}"
              if result.champion_before != result.version else
              f"already champion: models:/{result.name}@champion is version {result.version}")
    else:
        print(f"not promoted; champion stays {result.champion_after or 'unset'}")
    for reason in result.decision.reasons:
        print(f"  - {reason}")
    print(f"decision: {result.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "promote",
        help="register the candidate in the MLflow Model Registry; move @champion if it passes the gates",
        description="Register the trained candidate under params mlflow.model_name with lineage and test "
        "metric tags and a model card; alias it `champion` when it clears promote.min_miou, "
        "promote.min_class_iou and beats the champion on the same test split by promote.margin, "
        "else `challenger`. Exits 0 in both cases.",
    )
    p.add_argument("--run", type=Path, metavar="FILE", help="training run file (default <train.out>/run.json)")
    p.add_argument("--metrics", type=Path, metavar="FILE", help="candidate's test metrics (params evaluate.metrics)")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="dataset root, to evaluate the champion on the current split when needed (params data.root)")
    p.add_argument("--split", type=Path, metavar="FILE", help="split file (params split.out)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="decision record (default: promotion.json beside --metrics, else params promote.out)")
    p.set_defaults(handler=_run)
