"""`landcover split`: the CLI runner of the split stage (the DVC stage calls this command)."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import SPLITS, Params, arg_or
from landcover.outputs import side_output
from landcover.split.stage import SplitResult, run_split


def _pp(x: float) -> str:
    return f"{100 * x:.2f} pp"


def format_summary(result: SplitResult) -> str:
    s = result.stats
    lines = [f"split (seed {s['seed']}): {s['cities']} cities, {s['tiles']} tiles"]
    if s.get("excluded_tiles"):
        lines[0] += f" ({s['excluded_tiles']} tiles not in the valid list left out)"
    for name in SPLITS:
        p = s[name]
        lines.append(
            f"  {name:<5} {p['cities']:>5} cities {p['tiles']:>6} tiles  {100 * p['tile_share']:5.2f} % "
            f"(target {100 * p['target_tile_share']:.2f} %)"
        )
    lines.append(
        f"balance (largest |split share - whole share|): tile share {_pp(s['max_tile_share_error'])}, "
        f"climate zones {_pp(s['max_zone_share_diff'])} of tiles / {_pp(s['max_zone_city_share_diff'])} "
        f"of cities, classes {_pp(s['max_class_share_diff'])} (class shares from {s['class_source']})"
    )
    lines.append(f"wrote {result.out} and {result.stats_path}")
    return "\n".join(lines)


def _handler(args: argparse.Namespace, params: Params) -> int:
    if args.seed is not None:
        params = params.model_copy(
            update={"split": params.split.model_copy(update={"seed": args.seed})}
        )
    result = run_split(
        params,
        arg_or(args.data, params.data.root),
        arg_or(args.out, params.split.out),
        side_output(args.stats, args.out, lambda out: out.with_suffix(".stats.json"), params.split.stats),
        args.valid,
    )
    print(format_summary(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split",
        help="assign whole cities to train/val/test, stratified by climate zone and class mix",
        description="City-grouped, stratified train/val/test split (writes the split CSV and stats JSON).",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="dataset root with cities.csv and tiles/ or tiles.csv (params data.root)",
    )
    p.add_argument(
        "--out", type=Path, help="split CSV city_id,tile_id,split,climate_zone (params split.out)"
    )
    p.add_argument(
        "--stats", type=Path,
        help="split statistics JSON (default OUT with .stats.json with --out, else params split.stats)"
    )
    p.add_argument("--seed", type=int, help="random seed (params split.seed)")
    p.add_argument(
        "--valid",
        type=Path,
        help="valid_tiles.csv (city_id,tile_id) from `landcover validate`: "
        "only these tiles are split",
    )
    p.set_defaults(handler=_handler)
