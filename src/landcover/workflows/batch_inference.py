"""Batch-inference flow: the champion model turns a folder of tiles into fuel-map rasters.

Thin orchestration over `landcover.inference.stage.run_predict` (the code behind `landcover
predict` and the DVC stage): tiles are mapped as Prefect tasks on threads, or on a Dask cluster
when `predict.dask_address` is set; the run summary is published as an artifact, and the flow
ends Failed, listing the tiles, if any tile failed.

Run: `python flows/batch_inference.py --input data --out outputs/batch` or the `batch-inference`
deployment (prefect.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from landcover import reporting
from landcover.areas.stage import SUMMARY, run_areas
from landcover.config import load_params
from landcover.inference.stage import run_predict
from landcover.landscape.stage import run_landscape
from landcover.orchestration import prefect_map


class TilesFailed(RuntimeError):
    pass


@flow(name="batch-inference", log_prints=True)
def batch_inference(
    input: str = "data",
    out: str = "outputs/batch",
    model_uri: str | None = None,
    params_file: str = "params.yaml",
    split_file: str | None = None,
    subset: str | None = None,
    dem: str | None = None,
    areas_out: str | None = None,
) -> dict:
    """Predict land cover, fuel model and confidence COGs for every tile folder under `input`.

    Args:
        input: Folder of <city_id>/<tile_id>/ tile folders (or a dataset root holding tiles/).
        out: Output folder; tiles already done with the same model and inputs are skipped.
        model_uri: MLflow model URI; default models:/<mlflow.model_name>@champion.
        params_file: params.yaml with the inference, fuel and task-runner settings.
        split_file: Optional split file to select tiles from (with `subset`).
        subset: train, val or test, with `split_file`.
        dem: DEM file or URL: also write each tile's FlamMap / ELMFIRE landscape (as predict.landscape).
        areas_out: Folder of the per-city area maps (default: `<out>-areas` beside `out`).
    """
    params = load_params(params_file)
    if dem:
        params = params.model_copy(update={"predict": params.predict.model_copy(update={"landscape": True}),
                                           "landscape": params.landscape.model_copy(update={"dem": dem})})

    result = run_predict(params, Path(input), Path(out), model_uri, Path(split_file) if split_file else None,
                         subset, map_fn=prefect_map("predict", params.predict.workers, params.predict.dask_address,
                                                    retries=1),
                         landscape=run_landscape if params.predict.landscape else None)
    summary = result.summary()
    create_markdown_artifact(key="inference-summary", markdown=reporting.inference_markdown(Path(out) /
                             "run_summary.json"), description="Batch inference run")
    if result.failed:
        create_table_artifact(key="inference-failures", table=[{"tile": k, "reason": v} for k, v in
                                                               sorted(result.failed.items())])
        raise TilesFailed(f"{len(result.failed)} tile(s) failed: {', '.join(sorted(result.failed))}")
    areas = area_maps_task(params, out, areas_out or str(Path(out).parent / f"{Path(out).name}-areas"), input)
    print(f"{summary['tiles_written']} tiles written, {summary['tiles_skipped']} up to date -> {out}; "
          f"{areas['areas_written'] + areas['areas_skipped']} area maps -> {areas['out']}")
    return {**summary, "areas": areas}


@task(name="area-maps", cache_policy=NO_CACHE)
def area_maps_task(params, fuelmaps: str, out: str, input_root: str) -> dict:
    result = run_areas(params, Path(fuelmaps), Path(out), Path(input_root))
    create_markdown_artifact(key="area-maps", markdown=reporting.areas_markdown(Path(out) / SUMMARY),
                             description="One map per city")
    if result.failed:
        raise TilesFailed(f"{len(result.failed)} area map(s) failed: {', '.join(sorted(result.failed))}")
    return result.summary()


def main(argv: list[str] | None = None) -> None:
    """`python flows/batch_inference.py ...`: the flow from the command line."""
    ap = argparse.ArgumentParser(description=batch_inference.description)
    ap.add_argument("--input", default="data")
    ap.add_argument("--out", default="outputs/batch")
    ap.add_argument("--model-uri", default=None)
    ap.add_argument("--params-file", default="params.yaml")
    a = ap.parse_args(argv)
    batch_inference(input=a.input, out=a.out, model_uri=a.model_uri, params_file=a.params_file)
