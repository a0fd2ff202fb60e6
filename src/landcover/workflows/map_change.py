"""Map-change flow: what changed between two map versions (two years, or two model versions).

Thin orchestration over `landcover.change.stage.run_change` (the code behind `landcover change`):
the summary is published as an artifact, and the flow ends Failed, naming the tiles, if any tile
could not be compared (for example maps on different grids).

Run: `python flows/map_change.py --before outputs/batch-2023 --after outputs/batch-2024` or the
`map-change` deployment (prefect.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from landcover import reporting
from landcover.change.stage import SUMMARY, run_change
from landcover.config import load_params


class TilesFailed(RuntimeError):
    pass


@flow(name="map-change", log_prints=True)
def map_change(before: str, after: str, out: str = "outputs/change", params_file: str = "params.yaml") -> dict:
    """Transitions, change mask and km² matrices between two batch-inference output folders.

    Args:
        before: Batch-inference output folder of the earlier map.
        after: Batch-inference output folder of the later map (same tiles, same grids).
        out: Output folder.
        params_file: params.yaml (change.min_confidence).
    """
    params = load_params(params_file)
    result = run_change(params, Path(before), Path(after), Path(out))
    create_markdown_artifact(key="map-change", markdown=reporting.change_markdown(Path(out) / SUMMARY),
                             description="Map change")
    if result.failed:
        raise TilesFailed(f"{len(result.failed)} tile(s) failed: {', '.join(sorted(result.failed))}")
    summary = result.summary(params.change.min_confidence)
    print(f"{summary['tiles_compared']} tiles compared; {summary['changed_km2']} of {summary['mapped_km2']} km² "
          f"changed class -> {out}")
    return summary


def main(argv: list[str] | None = None) -> None:
    """`python flows/map_change.py ...`: the flow from the command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--out", default="outputs/change")
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args(argv)
    map_change(a.before, a.after, a.out, a.params)
