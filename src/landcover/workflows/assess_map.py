"""Assess-map flow: a map's accuracy and error-adjusted areas from reference points.

Thin orchestration over `landcover.assessment.stage.run_assess` (the code behind `landcover
assess`): the report is published as a Prefect artifact and logged to MLflow with the model version
the map came from.

Run: `python flows/assess_map.py --map outputs/region/eea --points points.gpkg` or the `assess-map`
deployment (prefect.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from landcover.assessment.report import markdown
from landcover.assessment.stage import run_assess
from landcover.config import load_params


@flow(name="assess-map", log_prints=True)
def assess_map(map_dir: str, points: str, out: str | None = None, attribute: str | None = None,
               preset: str | None = None, design_file: str | None = None, params_file: str = "params.yaml") -> dict:
    """Overall, user's and producer's accuracy and error-adjusted areas with 95 % intervals.

    Args:
        map_dir: Folder of the map (batch-inference tiles, area maps, a region's EEA cells, a change folder).
        points: Reference points: a vector file or a CSV with coordinates.
        out: Report folder (params assess.out).
        attribute: The reference class attribute (change maps: BEFORE,AFTER).
        preset: `lucas` for Eurostat's LUCAS points.
        design_file: design.json of a stratified sample (`landcover assess --design`).
        params_file: params.yaml.
    """
    params = load_params(params_file)
    result = run_assess(params, Path(map_dir), Path(points), Path(out) if out else None, attribute=attribute,
                        preset=preset, design_file=Path(design_file) if design_file else None)
    create_markdown_artifact(key="map-accuracy", markdown=markdown(result.report), description="Map accuracy")
    o = result.report["overall"]["overall_accuracy"]
    print(f"overall accuracy {o['value']} ± {o['ci95']} from {result.report['points']['used']} points -> {result.out}")
    return {"out": str(result.out), "overall_accuracy": o, "points": result.report["points"], "run_id": result.run_id}


def main(argv: list[str] | None = None) -> None:
    """`python flows/assess_map.py ...`: the flow from the command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--map", required=True)
    ap.add_argument("--points", required=True)
    ap.add_argument("--out")
    ap.add_argument("--attribute")
    ap.add_argument("--preset")
    ap.add_argument("--design-file")
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args(argv)
    assess_map(a.map, a.points, a.out, a.attribute, a.preset, a.design_file, a.params)
