"""Prefect flow of the validate stage: the same code as `landcover validate` and the DVC stage.

The flow only orchestrates: `inspect_tile` runs as one task per tile on the task runner chosen by
params.yaml (threads, or Dask when `validate.dask_address` is set), then the stage's own
`summarise_validation` runs the Great Expectations checkpoint and writes the outputs. A table
artifact lists the failures and a markdown artifact the summary (both visible in the UI).

Run: `python flows/validate_flow.py --data data` or deploy `validate_tiles`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from landcover.config import load_params
from landcover.dataset import TileRef
from landcover.validation.stage import ValidationResult, run_validation

try:
    from flows.runners import prefect_map
except ImportError:  # run as a script: flows/ itself is on sys.path
    from runners import prefect_map  # type: ignore[no-redef]


@task(name="inspect-tile", task_run_name="inspect-{tile.city_id}-{tile.tile_id}", cache_policy=NO_CACHE)
def inspect_tile_task(tile: TileRef, worker: Callable[[TileRef], dict[str, Any]]) -> dict[str, Any]:
    return worker(tile)


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
    result = run_validation(params, Path(data), out_dir, map_fn=prefect_map(inspect_tile_task, v.workers,
                                                                             v.dask_address))
    _publish(result)
    print(f"{result.tiles_passed}/{result.tiles_checked} tiles passed; report {result.paths['report.csv']}")
    result.raise_for_threshold()
    return result.summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=validate_tiles.description)
    parser.add_argument("--data", default="data")
    parser.add_argument("--out", default=None)
    parser.add_argument("--params-file", default="params.yaml")
    a = parser.parse_args()
    validate_tiles(data=a.data, out=a.out, params_file=a.params_file)
