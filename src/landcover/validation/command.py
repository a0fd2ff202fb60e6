"""`landcover validate`: the CLI (and DVC) entry of the validate stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from landcover.config import Params, arg_or

MAX_LISTED = 100  # quarantined tiles printed; the full list is in quarantine.csv


def _validate(args: argparse.Namespace, params: Params) -> int:
    from landcover.validation.stage import run_validation  # heavy imports only when used

    data = arg_or(args.data, params.data.root)
    out = arg_or(args.out, params.validation.out)
    result = run_validation(params, Path(data), Path(out))
    s = result.summary
    print(f"validated {s['tiles_checked']} tiles: {s['tiles_passed']} passed, "
          f"{s['tiles_quarantined']} quarantined ({s['quarantined_fraction']:.1%}; "
          f"limit {s['max_quarantined_fraction']:.1%})")
    for row in result.quarantined[:MAX_LISTED]:
        details = "; ".join(
            f"{f['reason']}{'[' + f['file'] + ']' if f['file'] else ''}: {f['column']}={f['observed']}"
            for f in row["failures"]
        )
        print(f"  quarantined {row['city_id']}/{row['tile_id']}: {details}")
    if len(result.quarantined) > MAX_LISTED:
        print(f"  ... {len(result.quarantined) - MAX_LISTED} more in {result.paths['quarantine.csv']}")
    print(f"report: {result.paths['report.csv']}")
    print(f"Data Docs: {result.paths['data_docs']}")
    result.raise_for_threshold()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check every tile with the Great Expectations suite; quarantine bad tiles",
        description="Validate tiles (raster-aware Great Expectations suite), write the report, "
        "the valid-tile list, the quarantine list, summary metrics and Data Docs. Exits non-zero "
        "when the quarantined share exceeds validate.max_quarantined_fraction.",
    )
    p.add_argument("--data", type=Path, help="dataset root (params data.root)")
    p.add_argument("--out", type=Path, help="output folder (params validate.out)")
    p.set_defaults(handler=_validate)
