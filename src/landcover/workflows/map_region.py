"""Map-region flow: an area and a year to a seamless land cover and fuel map on the EEA grid.

Thin orchestration over `landcover.region.stage.run_map` (the code behind `landcover map`): the tiles
of each step (compositing, inference) are Prefect tasks, on threads or on the Dask cluster at
`map.dask_address`; the plan and the run's summary are published as artifacts, and the flow ends
Failed, naming the tiles and cells, if any failed. A rerun redoes only what is unfinished.

Run: `python flows/map_region.py --aoi area.gpkg --year 2023 --climate-zone continental` or the
`map-region` deployment (prefect.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from landcover.config import load_params
from landcover.orchestration import prefect_map
from landcover.region.report import plan_markdown, summary_markdown
from landcover.region.stage import run_map


class RegionFailed(RuntimeError):
    pass


@flow(name="map-region", log_prints=True)
def map_region(
    aoi: str,
    year: int | None = None,
    out: str | None = None,
    source: str | None = None,
    model_uri: str | None = None,
    climate_zone: str | None = None,
    climate_zones: str | None = None,
    zones: str | None = None,
    dem: str | None = None,
    name: str | None = None,
    plan_only: bool = False,
    params_file: str = "params.yaml",
) -> dict:
    """Plan, composite, predict and assemble a region on the EEA grid (EPSG:3035, 10 m, 100 km cells).

    Args:
        aoi: Vector file of the region (any format GDAL reads, any CRS).
        year: Year of the seasons (params mosaic.year).
        out: Output folder (params map.out); a rerun resumes it.
        source: Scene source as `landcover mosaic --source` takes it (params mosaic.source).
        model_uri: MLflow model URI; default models:/<mlflow.model_name>@champion.
        climate_zone: One climate zone for the whole region (the fuel crosswalk's row).
        climate_zones: Vector of climate zones (attribute map.climate_zone_attribute), per pixel.
        zones: Polygons to give km² per class and fuel model for (attribute map.zones_attribute).
        dem: DEM file or URL: also the FlamMap / ELMFIRE landscape of every cell.
        name: The region's id (params map.name).
        plan_only: Only plan (tiles, scenes, bytes, core-hours); read no pixel.
        params_file: params.yaml.
    """
    params = load_params(params_file)
    map_fn = prefect_map("region-tile", params.map.workers, params.map.dask_address, retries=1)
    result = run_map(params, Path(aoi), year, Path(out) if out else None, source=source, model_uri=model_uri,
                     climate_zone=climate_zone, climate_zones_file=Path(climate_zones) if climate_zones else None,
                     zones_file=Path(zones) if zones else None, dem=dem, name=name, plan_only=plan_only,
                     map_fn=map_fn, progress=lambda step, done, total, what: print(f"[{step} {done}/{total}] {what}"))
    create_markdown_artifact(key="region-plan", markdown=plan_markdown(result.plan), description="Region plan")
    if plan_only:
        return result.summary()
    create_markdown_artifact(key="region-map", markdown=summary_markdown(result), description="Region map")
    if result.failed:
        raise RegionFailed(f"{len(result.failed)} step(s) failed: {', '.join(sorted(result.failed))}")
    print(f"region {result.plan['name']}: {len(result.steps['assemble']['cells'])} EEA cells -> {result.out / 'eea'}")
    return result.summary()


def main(argv: list[str] | None = None) -> None:
    """`python flows/map_region.py ...`: the flow from the command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aoi", required=True)
    ap.add_argument("--year", type=int)
    ap.add_argument("--out")
    ap.add_argument("--source")
    ap.add_argument("--model-uri")
    ap.add_argument("--climate-zone")
    ap.add_argument("--climate-zones")
    ap.add_argument("--zones")
    ap.add_argument("--dem")
    ap.add_argument("--plan", action="store_true")
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args(argv)
    map_region(a.aoi, a.year, a.out, a.source, a.model_uri, a.climate_zone, a.climate_zones, a.zones, a.dem,
               plan_only=a.plan, params_file=a.params)
