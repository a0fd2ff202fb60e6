"""`landcover change`."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import Params, arg_or
from landcover.errors import report_failures


def _run(args: argparse.Namespace, params: Params) -> int:
    from landcover.change.stage import SUMMARY, run_change

    out = arg_or(args.out, params.change.out)
    result = run_change(params, args.before, args.after, out)
    s = result.summary(params.change.min_confidence)
    print(f"change: {s['tiles_compared']} tiles compared, {s['mapped_km2']} km² mapped in both, "
          f"{s['changed_km2']} km² of another class -> {out} (summary {Path(out) / SUMMARY})")
    for key in result.only_before:
        print(f"  only in --before: {key}")
    for key in result.only_after:
        print(f"  only in --after: {key}")
    return report_failures("change", result.failed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "change", help="transitions between two map versions: transition and change-mask COGs, km² matrices",
        description="Pairs the tiles of two batch-inference output folders (two years, or two model "
        "versions) by <city>/<tile> and writes per tile a transition COG (from x 16 + to), a change mask "
        "gated by both maps' confidence (params change.min_confidence), the transition matrix in km² and "
        "gains and losses; per city and in total the summed matrix with a heat map.")
    p.add_argument("--before", type=Path, required=True, help="batch-inference output folder of the earlier map")
    p.add_argument("--after", type=Path, required=True, help="batch-inference output folder of the later map")
    p.add_argument("--out", type=Path, help="output folder (params change.out)")
    p.set_defaults(handler=_run)
