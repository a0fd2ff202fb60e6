"""The region job: from an area and a year to a seamless land cover and fuel map on the European grid.

One implementation behind `landcover map` and the `map-region` flow. It chains the stages, each of
which resumes on its own: plan (tiles per UTM zone, scenes per season, cost), composite every tile
(`mosaic_tiles`), predict with the champion or `--model` (`run_predict`, probabilities on), assemble
the EEA grid's cells (`assemble.py`), count km² per class and fuel model within `--zones` polygons, and
with `--dem` write the fire models' landscapes per cell. A rerun after a kill redoes only unfinished
tiles and cells.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from landcover.bands import BANDS
from landcover.classes import CLASSES
from landcover.config import Params, arg_or
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_write_json, sha256_file
from landcover.parallel import MapFn, dask_map, thread_map
from landcover.region.assemble import assemble, write_layer_vrts
from landcover.region.layers import ClimateZones, StatZones
from landcover.region.plan import RegionPlan, count_scenes, plan_region
from landcover.region.stats import write_statistics, zone_statistics

PLAN, SUMMARY, STATS = "plan.json", "region.json", "stats.csv"
Progress = Callable[[str, int, int, str], None]  # step, done, total, what


@dataclass
class MapResult:
    out: Path
    plan: dict
    steps: dict = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"out": str(self.out), "plan": self.plan, **self.steps, "failed": self.failed,
                "warnings": self.warnings, "seconds": round(self.seconds, 1)}


def climate_zones(p: Params, climate_zone: str | None, zones_file: Path | None) -> tuple[ClimateZones, str]:
    """The zones the fuel crosswalk follows, and an id of them for the cells' records."""
    fallback = arg_or(climate_zone, p.map.climate_zone)
    if zones_file is not None:
        return (ClimateZones.read(zones_file, p.map.climate_zone_attribute, fallback),
                f"{Path(zones_file).name}:{sha256_file(Path(zones_file))[:16]}")
    if fallback is None:
        raise LandcoverError("a region needs --climate-zone ZONE or --climate-zones FILE (the fuel crosswalk "
                             "follows the climate zone)")
    zones = ClimateZones.single(fallback)
    return zones, fallback


def check_model(model_uri: str) -> None:
    """A model for other bands or classes than the data contract's is refused before any pixel."""
    from landcover.model.loading import load_bundle

    bundle, _ = load_bundle(model_uri)
    meta = bundle.meta
    if tuple(meta.bands) != BANDS:
        raise LandcoverError(f"model {model_uri}: its bands {list(meta.bands)} are not the data contract's "
                             f"{list(BANDS)}")
    classes = [(c["code"], c["name"]) for c in meta.classes]
    if classes != [(c.code, c.name) for c in CLASSES]:
        raise LandcoverError(f"model {model_uri}: its classes {classes} are not the data contract's")


def make_plan(p: Params, aoi: Path, year: int, source, zones: ClimateZones, name: str | None) -> RegionPlan:
    from landcover.mosaic.grid import read_aoi

    plan = plan_region(p, read_aoi(aoi), zones.at, name)
    count_scenes(plan, source, year, p.mosaic.max_cloud_cover, p.mosaic.seasons)
    return plan


def run_map(p: Params, aoi: Path, year: int | None, out: Path | None = None, *, source: str | None = None,
            model_uri: str | None = None, climate_zone: str | None = None, climate_zones_file: Path | None = None,
            zones_file: Path | None = None, dem: str | None = None, name: str | None = None, plan_only: bool = False,
            map_fn: MapFn | None = None, progress: Progress | None = None) -> MapResult:
    import pystac

    from landcover.inference.catalog import write_collection
    from landcover.inference.stage import default_model_uri, run_predict
    from landcover.mosaic.opening import open_source
    from landcover.mosaic.stage import mosaic_tiles

    start = time.perf_counter()
    year = arg_or(year, p.mosaic.year)
    if year is None:
        raise LandcoverError("--year is needed (or params mosaic.year)")
    out = Path(arg_or(out, p.map.out))
    zones, zones_id = climate_zones(p, climate_zone, climate_zones_file)
    stat_zones = StatZones.read(zones_file, p.map.zones_attribute) if zones_file else None
    src = open_source(arg_or(source, p.mosaic.source), p.mosaic)
    plan = make_plan(p, aoi, year, src, zones, name)
    result = MapResult(out, plan.summary(p))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / PLAN, {**result.plan, "year": year, "source": src.description})
    if plan_only:
        return result
    if not any(sum(seasons.values()) for seasons in plan.scenes.values()):
        raise LandcoverError(f"{aoi}: no scene of {year} covers the area in {src.description}")
    model_uri = model_uri or default_model_uri(p)
    check_model(model_uri)
    if map_fn is None:
        map_fn = dask_map(p.map.dask_address) if p.map.dask_address else thread_map(p.map.workers, catch_errors=True)

    def step(name: str, done: int, total: int, what: str) -> None:
        if progress:
            progress(name, done, total, what)

    mosaic = mosaic_tiles(p, out / "data", plan.tiles, plan.cities, src, year, map_fn,
                          lambda key, done, total, what: step(f"composite {key}", done, total, what))
    result.steps["composite"] = mosaic.summary()
    result.failed |= {f"composite {k}": v for k, v in mosaic.failed.items()}
    result.warnings += [f"{k}: {w}" for k, ws in mosaic.warnings.items() for w in ws]
    with_probabilities = p.model_copy(update={"predict": p.predict.model_copy(
        update={"probabilities": p.map.resampling == "probabilities", "landscape": False})})
    predicted = run_predict(with_probabilities, out / "data", out / "maps", model_uri, map_fn=map_fn,
                            progress=lambda d, t, w: step("predict", d, t, w))
    result.steps["predict"] = predicted.summary()
    result.failed |= {f"predict {k}": v for k, v in predicted.failed.items()}
    cells = assemble(p, plan.cells, out / "maps", out / "eea", plan.name, zones, zones_id,
                     progress=lambda d, t, w: step("assemble", d, t, w))
    result.steps["assemble"] = {"cells": cells, "vrts": [f"eea/{s}.vrt" for s in ("landcover", "fuel", "confidence")]}
    assets = {}
    if stat_zones is not None:
        rows = zone_statistics(plan.cells, out / "eea" / plan.name, stat_zones, p.map.block)
        write_statistics(rows, out / "eea" / STATS)
        result.steps["statistics"] = {"file": f"eea/{STATS}", "zones": len(stat_zones.names)}
        assets["statistics"] = pystac.Asset(f"./{STATS}", title="km² per land cover class and fuel model per zone",
                                            media_type="text/csv", roles=["metadata"])
    for stem in ("landcover", "fuel", "confidence"):
        assets[f"{stem}-vrt"] = pystac.Asset(f"./{stem}.vrt", title=f"{stem} over every cell (GDAL VRT)",
                                             media_type="application/xml", roles=["data", "overview"])
    write_collection(out / "eea", title=f"Land cover and fuel maps of {plan.name}, {year}", description=(
        f"Land cover (10 classes), FBFM40 fuel model and confidence of {plan.name} for {year} on the EEA "
        "reference grid (ETRS89-LAEA, EPSG:3035, 10 m), one item per 100 km cell. Written by `landcover map`."),
        assets=assets)
    if dem:
        from landcover.landscape.stage import run_landscape
        from landcover.landscape.writers import LAYERS, NODATA, stored_unit

        landscape = run_landscape(p, out / "eea", out / "eea", dem)
        result.steps["landscape"] = landscape.summary()
        if p.landscape.elmfire and not landscape.failed:
            vrts = write_layer_vrts(plan.cells, out / "eea", plan.name, "elmfire",
                                    {k: f"{v[0]} ({stored_unit(k)})" for k, v in LAYERS.items()}, "Int16", NODATA)
            result.steps["landscape"]["vrts"] = [str(v.relative_to(out)) for v in vrts]
        result.failed |= {f"landscape {k}": v for k, v in landscape.failed.items()}
    result.seconds = time.perf_counter() - start
    atomic_write_json(out / SUMMARY, result.summary())
    return result
