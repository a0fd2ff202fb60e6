"""`landcover map` on a region that straddles UTM zones 31 and 32 at 6 deg E, from fabricated L2A scenes in
each zone to the EEA grid: no gap and no double along the border, the pixels of each source tile
reprojected independently, fuel following each pixel's climate zone, km² that add up, a plan whose
counts the run then meets, the fire models' landscapes per cell, SAFE archives and a Dask cluster of
worker processes giving the same bytes, a rerun that redoes only what a kill left unfinished, and bad
input refused by name."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.warp import reproject
from shapely.geometry import box

from conftest import REPO, TINY_TRAIN
from landcover.bands import SEASONS
from landcover.config import load_params
from landcover.errors import LandcoverError
from landcover.fuel import lookup_table
from landcover.synth.l2a import scenes_over, write_catalog, write_safe

AOI = box(5.994, 45.000, 6.006, 45.004)  # about 940 m x 445 m, across the 6 deg E zone border
SPLIT = 45.002  # the statistics' two polygons: south and north of it
SETTINGS = {**TINY_TRAIN, "map.tile_size": 64, "mosaic.plausibility.min_land_pixels": 100, "map.block": 64}
DEM_Z0, DEM_PER_DEG_LAT = 800.0, 20_000.0  # the test DEM: 800 m at 45 deg N, rising 20 m per 0.001 deg north


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """The AOI, climate zones (mediterranean west of 6 deg E, alpine east), statistics zones and a static
    catalogue of cloud-free scenes over each zone's tiles, stored in that zone's CRS."""
    from landcover.region.plan import plan_region

    root = tmp_path_factory.mktemp("region")
    p = load_params(REPO / "params.yaml", SETTINGS)
    gpd.GeoDataFrame({"name": ["aoi"]}, geometry=[AOI], crs=4326).to_file(root / "aoi.gpkg")
    gpd.GeoDataFrame({"zone": ["mediterranean", "alpine"]}, geometry=[box(5, 44, 6, 46), box(6, 44, 7, 46)],
                     crs=4326).to_file(root / "climate.gpkg")
    gpd.GeoDataFrame({"name": ["south", "north"]},
                     geometry=[box(5.995, 45.0005, 6.005, SPLIT), box(5.995, SPLIT, 6.005, 45.0035)],
                     crs=4326).to_crs(3035).to_file(root / "units.gpkg")
    plan = plan_region(p, AOI, lambda lon, lat: "continental")
    scenes = []
    for epsg in sorted({t.epsg for t in plan.tiles}):
        bounds = np.array([t.bounds for t in plan.tiles if t.epsg == epsg])
        union = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
        scenes += scenes_over(union, epsg, 2023, per_season=1, seed=epsg % 100, cloud_share=0.0)
    write_catalog(scenes, root / "catalog")
    for k, scene in enumerate(scenes):  # the same scenes as the archive keeps them, every other one zipped
        write_safe(scene, root / "archive" / "Sentinel-2" / "L2A", dated=True, zipped=k % 2 == 1)
    res = 0.0005  # a DEM in EPSG:4326 (about 40 x 55 m, coarser than the maps), z linear in latitude
    west, north = AOI.bounds[0] - 0.01, AOI.bounds[3] + 0.01
    height, width = int((AOI.bounds[3] - AOI.bounds[1] + 0.02) / res), int((AOI.bounds[2] - AOI.bounds[0] + 0.02) / res)
    lat = north - (np.arange(height) + 0.5) * res
    z = np.repeat((DEM_Z0 + DEM_PER_DEG_LAT * (lat - 45.0))[:, None], width, axis=1).astype(np.float32)
    with rasterio.open(root / "dem.tif", "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(west, north, res, res)) as dst:
        dst.write(z, 1)
    return root


def _params(**more):
    return load_params(REPO / "params.yaml", {**SETTINGS, **more})


@pytest.fixture(scope="module")
def model_uri(tiny_model, tmp_path_factory) -> str:
    """The tiny model with its class head sharpened: several classes on the map, so a wrong merge or
    crosswalk row would show (the smoke-trained one predicts one class everywhere)."""
    from test_inference import varied_model_uri

    return varied_model_uri(_params(), tiny_model.model_uri, tmp_path_factory.mktemp("varied"), 1.0)


def _kwargs(region: Path, model_uri: str, source: str | None = None) -> dict:
    return dict(source=source or str(region / "catalog" / "catalog.json"), model_uri=model_uri,
                climate_zones_file=region / "climate.gpkg", zones_file=region / "units.gpkg")


def _digest(out: Path) -> dict[str, str]:
    """Every map of the region on the EEA grid, by content."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.tif"))}


@pytest.fixture(scope="module")
def mapped(region, model_uri, tmp_path_factory):
    """The plan, then the region mapped in one process, with the DEM: (out, plan, result)."""
    from landcover.region.stage import run_map

    p = _params()
    out = tmp_path_factory.mktemp("mapped") / "out"
    planned = run_map(p, region / "aoi.gpkg", 2023, out, plan_only=True, **_kwargs(region, model_uri)).plan
    assert not (out / "eea").exists() and not (out / "data").exists()  # the plan reads no pixel
    result = run_map(p, region / "aoi.gpkg", 2023, out, dem=str(region / "dem.tif"), **_kwargs(region, model_uri))
    return out, planned, result


def test_a_two_zone_region_maps_onto_the_eea_grid(region, mapped, model_uri) -> None:
    from landcover.region.stage import run_map

    p = _params()
    out, planned, result = mapped
    kwargs = _kwargs(region, model_uri)
    assert set(planned["tiles_per_zone"]) == {"EPSG:32631", "EPSG:32632"}
    assert not result.failed, result.failed
    # the plan's counts are what the run then did: tiles, and scenes per tile and season
    assert result.steps["composite"]["tiles_written"] == planned["tiles"]
    manifests = sorted((out / "data" / "tiles").glob("*/*/manifest.json"))
    seen = {s: 0 for s in SEASONS}
    for path in manifests:
        for season, record in json.loads(path.read_text())["seasons"].items():
            seen[season] += len(record["scenes"]) + len(record["excluded"])
    assert seen == planned["scenes_per_season"] and len(manifests) == planned["tiles"]

    (cell,) = planned["eea_cells"]
    folder = out / "eea" / "region" / cell
    with rasterio.open(folder / "landcover.tif") as lc, rasterio.open(folder / "fuel.tif") as fu, \
            rasterio.open(folder / "confidence.tif") as co:
        assert lc.crs.to_epsg() == 3035 and lc.res == (10.0, 10.0)
        assert lc.transform.c % 10 == 0 and lc.transform.f % 10 == 0  # pixel edges on multiples of 10 m
        classes, fuel, confidence = lc.read(1), fu.read(1), co.read(1)
        transform, shape = lc.transform, lc.shape
        assert lc.colormap(1)[1][:3] == (0xE3, 0x1A, 0x1C) and lc.tags()["CLASS_1"] == "Roads"
        assert lc.overviews(1)  # a COG
    with rasterio.open(out / "eea" / "landcover.vrt") as vrt:
        assert vrt.crs.to_epsg() == 3035 and np.array_equal(vrt.read(1), classes)

    # independently: each source tile's probabilities warped bilinearly onto the cell, argmax, the surer
    # wins. GDAL warps the whole cell here and block by block in the job: the probabilities then differ
    # by float rounding (< 0.001), so pixels within 0.01 of a tie or of a rounding boundary are left out
    sources = sorted((out / "maps").glob("*/*/probabilities.tif"))
    assert {s.parent.parent.name for s in sources} == {"region_31N", "region_32N"}
    warped = []
    for path in sources:
        probs = np.full((10, *shape), np.nan, np.float32)
        with rasterio.open(path) as src:
            reproject(rasterio.band(src, list(range(1, 11))), probs, src_nodata=255, dst_nodata=np.nan,
                      dst_transform=transform, dst_crs="EPSG:3035", resampling=rasterio.enums.Resampling.bilinear)
        valid = ~np.isnan(probs[0])
        ordered = np.sort(np.where(valid, probs, -1), axis=0)
        warped.append((valid, np.where(valid, np.argmax(np.where(valid, probs, -1), axis=0) + 1, 0),
                       ordered[-1], ordered[-1] - ordered[-2]))
    jj, ii = np.mgrid[0:shape[0], 0:shape[1]]
    x, y = transform * (ii + 0.5, jj + 0.5)
    lon, lat = Transformer.from_crs(3035, 4326, always_xy=True).transform(x, y)
    inside = (lon > AOI.bounds[0]) & (lon < AOI.bounds[2]) & (lat > AOI.bounds[1]) & (lat < AOI.bounds[3])
    assert inside.sum() > 2000 and (classes[inside] > 0).all()  # no gap anywhere in the area
    covered = [w[0] for w in warped]
    only = [c & ~np.logical_or.reduce([o for o in covered if o is not c]) for c in covered]
    both = np.logical_and.reduce(covered)
    assert all(o.sum() > 200 for o in only) and both.sum() > 50  # each zone alone, and an overlap
    for alone, (_, codes, _, margin) in zip(only, warped, strict=True):
        clear_cut = alone & (margin > 0.01)
        assert clear_cut.sum() > 0.8 * alone.sum() and np.array_equal(classes[clear_cut], codes[clear_cut])
    sure = np.stack([w[2] for w in warped])
    best = sure.max(axis=0)
    surer = np.argmax(sure, axis=0)
    decided = both & (np.abs(sure[0] - sure[1]) > 0.01)
    for k, (_, codes, _, margin) in enumerate(warped):  # along the border: no double, the surer zone's class
        pick = decided & (surer == k) & (margin > 0.01)
        assert np.array_equal(classes[pick], codes[pick])
    assert (decided & (margin > 0.01)).sum() > 0.5 * both.sum()
    mapped = classes > 0
    far = mapped & (np.abs(best - np.floor(best) - 0.5) > 0.01)
    assert np.array_equal(confidence[far], np.clip(np.round(best[far]), 1, 100))
    assert np.abs(confidence[mapped].astype(int) - np.clip(np.round(best[mapped]), 1, 100)).max() <= 1

    # fuel follows each pixel's climate zone through the crosswalk, not resampled
    p_fuel = load_params(REPO / "params.yaml").fuel
    want = np.where(lon < 6.0, lookup_table(p_fuel.for_zone("mediterranean"))[classes],
                    lookup_table(p_fuel.for_zone("alpine"))[classes])
    assert np.array_equal(fuel, want)
    differ = lookup_table(p_fuel.for_zone("mediterranean"))[classes] != lookup_table(p_fuel.for_zone("alpine"))[classes]
    assert (differ & (lon < 6.0)).sum() > 10 and (differ & (lon > 6.0)).sum() > 10  # the rows matter here
    assert len(np.unique(classes[inside])) >= 4
    record = json.loads((folder / "provenance.json").read_text())
    assert set(record["zones_used"]) == {"mediterranean", "alpine"}

    # km² per polygon add up to its area (10 m pixels of an equal-area grid: 100 m² each)
    stats = [r for r in _csv(out / "eea" / "stats.csv") if r["layer"] == "landcover"]
    units = gpd.read_file(region / "units.gpkg")
    for name, polygon in zip(units["name"], units.geometry, strict=True):
        km2 = sum(float(r["km2"]) for r in stats if r["zone"] == name)
        assert abs(km2 - polygon.area / 1e6) <= polygon.length / 1e3 * 0.01  # at most a pixel's width of edge
        assert not [r for r in stats if r["zone"] == name and r["code"] == "0"]  # all of it mapped

    # the fire models' landscape of the cell on the same grid, and a VRT per layer over the cells
    with rasterio.open(out / "eea" / "elmfire" / "dem.vrt") as dem, \
            rasterio.open(out / "eea" / "elmfire" / "fbfm40.vrt") as fbfm:
        assert dem.crs.to_epsg() == 3035 and dem.transform == transform and dem.shape == shape
        assert np.array_equal(fbfm.read(1)[fuel > 0], fuel[fuel > 0])
        heights = dem.read(1)
    assert np.abs(heights[inside] - (DEM_Z0 + DEM_PER_DEG_LAT * (lat[inside] - 45.0))).max() <= 1.0
    assert (folder / "landscape.lcp").is_file() and result.steps["landscape"]["tiles_written"] == 1

    # a STAC collection over the cells, with the statistics and the VRTs
    import pystac

    collection = pystac.Collection.from_file(str(out / "eea" / "collection.json"))
    (item,) = collection.get_items()
    assert item.id == f"region.{cell}" and item.properties["proj:code"] == "EPSG:3035"
    assert Path(item.assets["landcover"].get_absolute_href()) == folder / "landcover.tif"
    assert Path(collection.assets["statistics"].get_absolute_href()) == out / "eea" / "stats.csv"
    assert Path(collection.assets["fuel-vrt"].get_absolute_href()).is_file()

    # a rerun after the job: nothing redone
    again = run_map(p, region / "aoi.gpkg", 2023, out, **kwargs)
    assert again.steps["composite"]["tiles_skipped"] == planned["tiles"]
    assert again.steps["predict"]["tiles_skipped"] == planned["tiles"]
    assert set(again.steps["assemble"]["cells"].values()) == {"skipped"}


def _csv(path: Path) -> list[dict]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


def test_the_eea_grid_cells_and_the_utm_zones_of_sentinel_2() -> None:
    from landcover.geo import s2_utm_zone
    from landcover.region.plan import eea_cells

    assert (s2_utm_zone(60.4, 5.3), s2_utm_zone(60.4, 2.9), s2_utm_zone(78.2, 15.6), s2_utm_zone(78.2, 8.0)) == \
        (32, 31, 33, 31)  # Bergen in 32V, Svalbard's 33X and 31X
    cells, extent = eea_cells(box(4_299_995, 3_199_995, 4_400_012, 3_200_004), 100)
    assert [c.name for c in cells] == ["100kmE42N31", "100kmE43N31", "100kmE44N31", "100kmE42N32", "100kmE43N32",
                                       "100kmE44N32"]
    assert extent == (4_299_990.0, 3_199_990.0, 4_400_020.0, 3_200_010.0)
    assert all(c.west % 10 == 0 and c.north % 10 == 0 for c in cells)
    assert sum(c.width * c.height for c in cells) == 10_003 * 2


def test_bad_input_is_refused_by_name(region, tiny_model, tmp_path) -> None:
    from landcover.region.stage import run_map

    p = _params()
    source = str(region / "catalog" / "catalog.json")
    gpd.GeoDataFrame({"name": []}, geometry=[], crs=4326).to_file(tmp_path / "empty.gpkg")
    with pytest.raises(LandcoverError, match="empty.gpkg: AOI has no features"):
        run_map(p, tmp_path / "empty.gpkg", 2023, tmp_path / "o", source=source, climate_zone="alpine")
    with pytest.raises(LandcoverError, match="zone' .*has no attribute 'zone'|has no attribute 'zone'"):
        run_map(p, region / "aoi.gpkg", 2023, tmp_path / "o", source=source,
                climate_zones_file=region / "units.gpkg")
    with pytest.raises(LandcoverError, match="--climate-zone ZONE or --climate-zones FILE"):
        run_map(p, region / "aoi.gpkg", 2023, tmp_path / "o", source=source)
    far = tmp_path / "far.gpkg"
    gpd.GeoDataFrame({"name": ["far"]}, geometry=[box(20.0, 50.0, 20.01, 50.005)], crs=4326).to_file(far)
    with pytest.raises(LandcoverError, match="far.gpkg: no scene of 2023 covers the area"):
        run_map(p, far, 2023, tmp_path / "o", source=source, climate_zone="alpine", model_uri=tiny_model.model_uri)
    assert not (tmp_path / "o" / "eea").exists()


def test_safe_products_as_the_archive_keeps_them_give_the_same_map(region, mapped, model_uri, tmp_path) -> None:
    """The same scenes as dated SAFE folders and zips (`Sentinel-2/L2A/YYYY/MM/DD/`) in both zones: the
    region's maps are the catalogue run's, byte for byte."""
    from landcover.region.stage import run_map

    out = tmp_path / "out"
    kwargs = _kwargs(region, model_uri, source=str(region / "archive"))
    result = run_map(_params(), region / "aoi.gpkg", 2023, out, **kwargs)
    assert not result.failed, result.failed
    assert result.plan["scenes_per_season"] == mapped[1]["scenes_per_season"]
    reference = _digest(mapped[0] / "eea" / "region")
    assert reference and _digest(out / "eea" / "region") == {k: v for k, v in reference.items() if "elmfire" not in k}


def _params_file(tmp_path: Path, **more: object) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in {**SETTINGS, **more}.items():
        *sections, key = dotted.split(".")
        node = raw
        for section in sections:
            node = node[section]
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_the_map_region_flow_on_dask_worker_processes_and_a_rerun_after_a_kill(
        region, mapped, model_uri, prefect_harness, tmp_path) -> None:
    """The `map-region` flow with its tiles on a scheduler and two worker processes started as a user
    starts them: the single-process run's maps, byte for byte. Then what a kill leaves (a tile's
    composite without its manifest, a cell without its record) is redone, and only that."""
    from landcover.workflows.map_region import map_region
    from test_flows import dask_processes

    out = tmp_path / "out"
    with dask_processes(tmp_path) as client:
        params_file = _params_file(tmp_path, **{"map.dask_address": client.scheduler.address})
        summary = map_region(str(region / "aoi.gpkg"), 2023, str(out), source=str(region / "catalog" / "catalog.json"),
                             model_uri=model_uri, climate_zones=str(region / "climate.gpkg"),
                             zones=str(region / "units.gpkg"), params_file=str(params_file))
    assert summary["composite"]["tiles_written"] == mapped[1]["tiles"] and not summary["failed"]
    reference = {k: v for k, v in _digest(mapped[0] / "eea" / "region").items() if "elmfire" not in k}
    assert _digest(out / "eea" / "region") == reference
    assert (out / "eea" / "stats.csv").read_text() == (mapped[0] / "eea" / "stats.csv").read_text()

    # what a kill leaves: a tile killed while writing its seasons (its manifest still says "writing", as
    # the mosaic writes it before the first season file), a cell whose record was not yet written
    tile = sorted((out / "data" / "tiles").glob("*/*/manifest.json"))[0]
    record = json.loads(tile.read_text())
    tile.write_text(json.dumps({k: v for k, v in record.items() if k not in ("files", "seasons", "created")}
                               | {"status": "writing"}))
    cell = next((out / "eea" / "region").iterdir())
    (cell / "provenance.json").unlink()
    again = map_region(str(region / "aoi.gpkg"), 2023, str(out), source=str(region / "catalog" / "catalog.json"),
                       model_uri=model_uri, climate_zones=str(region / "climate.gpkg"),
                       zones=str(region / "units.gpkg"), params_file=str(_params_file(tmp_path)))
    assert again["composite"]["tiles_written"] == 1 and again["composite"]["tiles_skipped"] == mapped[1]["tiles"] - 1
    assert again["assemble"]["cells"] == {cell.name: "written"}
    assert _digest(out / "eea" / "region") == reference


def test_a_season_without_scenes_is_mapped_from_the_other_three_and_flagged(region, model_uri, tmp_path) -> None:
    """No winter scene in the catalogue: the tiles are composited with winter empty, the summary says
    so per tile, and the model (trained with seasons dropped) maps them from the other three."""
    import pystac

    from landcover.region.stage import run_map

    catalog = pystac.Catalog.from_file(str(region / "catalog" / "catalog.json"))
    scenes = [i for i in catalog.get_items(recursive=True) if i.datetime.month not in (12, 1, 2)]
    east = box(6.0005, 45.001, 6.004, 45.003)
    gpd.GeoDataFrame({"name": ["east"]}, geometry=[east], crs=4326).to_file(tmp_path / "east.gpkg")
    copy = pystac.Catalog("three-seasons", "no winter")
    for item in scenes:
        clone = item.clone()
        for asset in clone.assets.values():
            asset.href = str(Path(item.get_self_href()).parent / asset.href) if not os.path.isabs(asset.href) \
                else asset.href
        copy.add_item(clone)
    copy.normalize_hrefs(str(tmp_path / "three"))
    copy.save(pystac.CatalogType.SELF_CONTAINED)
    result = run_map(_params(), tmp_path / "east.gpkg", 2023, tmp_path / "out", source=str(tmp_path / "three" /
                     "catalog.json"), model_uri=model_uri, climate_zone="alpine")
    assert not result.failed, result.failed
    assert result.plan["scenes_per_season"]["winter"] == 0 and result.plan["scenes_per_season"]["summer"] > 0
    assert result.warnings and all("winter: no scene found" in w for w in result.warnings)
    (cell,) = result.plan["eea_cells"]
    with rasterio.open(tmp_path / "out" / "eea" / "region" / cell / "landcover.tif") as src:
        assert (src.read(1) > 0).mean() > 0.5
