"""Build-dataset flow: Sentinel-2 L2A scenes and reference maps -> a dataset in the tile contract.

Thin orchestration over the same code as `landcover mosaic` and `landcover labels`: tiles are
mapped as Prefect tasks (one at a time by default: each tile's composite already runs on every
core through Dask, or on the cluster at `mosaic.dask_address`), labels per tile on threads, then
the `validate-tiles` flow checks the result. Summaries are published as artifacts; the flow ends
Failed, naming the tiles, if any tile failed.

Run: `python flows/build_dataset.py --cities cities.csv --source earth-search --year 2023 --out
data-real --reference ESA_WorldCover.tif --preset worldcover`, or the `build-dataset` deployment.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from landcover import reporting
from landcover.config import load_params
from landcover.labels.stage import run_labels
from landcover.mosaic.stage import run_mosaic
from landcover.orchestration import prefect_map
from landcover.workflows.validate_tiles import validate_tiles


class TilesFailed(RuntimeError):
    pass


@flow(name="build-dataset", log_prints=True)
def build_dataset(
    out: str,
    year: int,
    cities: str | None = None,
    only: list[str] | None = None,
    aoi: str | None = None,
    city_id: str | None = None,
    climate_zone: str | None = None,
    source: str | None = None,
    references: list[str] | None = None,
    attribute: str | None = None,
    preset: str | None = None,
    validation_out: str | None = None,
    params_file: str = "params.yaml",
) -> dict:
    """Mosaic every tile, burn the reference labels, validate.

    Args:
        out: Dataset root to create or complete (cities.csv, tiles/).
        year: Year of the seasons (winter starts in December of the year before).
        cities: cities.csv; each city gets mosaic.grid x mosaic.grid tiles centred on it.
        only: With `cities`: the city ids to make.
        aoi: Vector file whose area is tiled (instead of `cities`), with `city_id`.
        city_id: With `aoi`: the city the tiles belong to.
        climate_zone: With `aoi`: the city's climate zone, when it is not yet in OUT/cities.csv.
        source: Preset, STAC API URL, local STAC catalog, or folder of SAFE products (params mosaic.source).
        references: Reference vectors or rasters for label.tif, first wins; none: no labels.
        attribute: Vector attribute holding the class value (params labels.attribute).
        preset: Label crosswalk preset (worldcover, clc, clc-raster; params labels.preset).
        validation_out: Validation report folder (default reports/datasets/<out name>/validation).
        params_file: params.yaml with the mosaic, labels and validate sections.
    """
    params = load_params(params_file)
    mosaic = run_mosaic(params, Path(out), year, cities_file=Path(cities) if cities else None, only=only,
                        aoi=Path(aoi) if aoi else None, city_id=city_id, climate_zone=climate_zone, source=source,
                        map_fn=prefect_map("mosaic", 1, params.mosaic.dask_address))
    summary = {"mosaic": mosaic.summary()}
    failed = dict(mosaic.failed)
    if references:
        labels = run_labels(params, Path(out), [Path(r) for r in references], attribute, preset,
                            map_fn=prefect_map("label", 2))
        summary["labels"] = labels.summary()
        failed |= labels.failed
    create_markdown_artifact(key="build-dataset", description="Dataset build",
                             markdown=reporting.dataset_markdown(summary, mosaic.source))
    if failed:
        raise TilesFailed(f"{len(failed)} tile(s) failed: " + "; ".join(f"{k}: {v}" for k, v in sorted(failed.items())))
    report_dir = validation_out or str(Path("reports/datasets") / Path(out).resolve().name / "validation")
    summary["validation"] = validate_tiles(data=out, out=report_dir, params_file=params_file)
    print(f"{mosaic.summary()['tiles_written']} tiles mosaicked, {len(mosaic.skipped)} up to date -> {out}")
    return summary


def main(argv: list[str] | None = None) -> None:
    """`python flows/build_dataset.py ...`: the flow from the command line."""
    ap = argparse.ArgumentParser(description=build_dataset.description)
    ap.add_argument("--out", required=True)
    ap.add_argument("--year", type=int, required=True)
    ap.add_argument("--cities")
    ap.add_argument("--aoi")
    ap.add_argument("--city-id")
    ap.add_argument("--climate-zone")
    ap.add_argument("--source")
    ap.add_argument("--reference", action="append")
    ap.add_argument("--attribute")
    ap.add_argument("--preset")
    ap.add_argument("--params-file", default="params.yaml")
    a = ap.parse_args(argv)
    build_dataset(out=a.out, year=a.year, cities=a.cities, aoi=a.aoi, city_id=a.city_id, climate_zone=a.climate_zone,
                  source=a.source, references=a.reference, attribute=a.attribute, preset=a.preset,
                  params_file=a.params_file)
