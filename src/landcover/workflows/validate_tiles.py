"""Prefect flow of the validate stage: the same code as `landcover validate` and the DVC stage.

The flow only orchestrates: `inspect_tile` runs as one task per tile on the task runner chosen by
params.yaml (threads, or Dask when `validate.dask_address` is set), then the stage's own
`summarise_validation` runs the Great Expectations checkpoint and writes the outputs. A table
artifact lists the failures and a markdown artifact the summary (both visible in the UI).

Run: `python flows/validate_flow.py --data data` or deploy `validate_tiles`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from landcover.config import load_params
from landcover.orchestration import prefect_map
from landcover.validation.stage import ValidationResult, run_validation


def _publish(result: ValidationResult) -> None:
    s = result.summary
    failures = [
        {"city_id": r["city_id"], "tile_id": r["tile_id"], "reason": f["reason"], "file": f["file"],
         "column": f["column"], "observed": str(f["observed"])}
        for r in result.quarantined for f in r["failures"]
    ]
    create_table_artifact(
        table=failures or [{"city_id": "", "tile_id": "", "reason": "none", "file": "",
                            "column": "", "observed": ""}],
        key="tile-validation-failures",
        description=f"Failed expectations per tile ({s['tiles_quarantined']} tiles quarantined)",
    )
    reasons = "\n".join(f"| {k} | {n} |" for k, n in s["quarantined_by_reason"].items() if n)
    create_markdown_artifact(
        key="tile-validation-summary",
        markdown=(
            f"# Tile validation\n\n{s['tiles_checked']} tiles checked, {s['tiles_passed']} passed, "
            f"{s['tiles_quarantined']} quarantined ({s['quarantined_fraction']:.1%}, limit "
            f"{s['max_quarantined_fraction']:.1%}).\n\n| reason | tiles |\n|---|---:|\n{reasons}\n\n"
            f"Report: `{result.paths['report.csv']}`; Data Docs: `{result.paths['data_docs']}`\n"
        ),
        description="Tile validation summary",
    )


@flow(name="validate-tiles", log_prints=True)
def validate_tiles(
    data: str = "data", out: str | None = None, params_file: str = "params.yaml"
) -> dict[str, Any]:
    """Validate every tile with the Great Expectations suite; quarantine the bad ones.

    Args:
        data: Dataset root holding cities.csv and tiles/.
        out: Output folder for the report, lists, metrics and Data Docs (default: params
            validate.out).
        params_file: params.yaml to read the thresholds and the task runner settings from.
    """
    params = load_params(params_file)
    out_dir = Path(out) if out else params.validation.out
    v = params.validation
    result = run_validation(params, Path(data), out_dir, map_fn=prefect_map("inspect", v.workers, v.dask_address))
    _publish(result)
    print(f"{result.tiles_passed}/{result.tiles_checked} tiles passed; report {result.paths['report.csv']}")
    result.raise_for_threshold()
    return result.summary


def main(argv: list[str] | None = None) -> None:
    """`python flows/validate_flow.py ...`: the flow from the command line."""
    parser = argparse.ArgumentParser(description=validate_tiles.description)
    parser.add_argument("--data", default="data")
    parser.add_argument("--out", default=None)
    parser.add_argument("--params-file", default="params.yaml")
    a = parser.parse_args(argv)
    validate_tiles(data=a.data, out=a.out, params_file=a.params_file)
