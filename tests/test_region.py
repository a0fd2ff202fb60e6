"""`landcover map` on a region that straddles UTM zones 31 and 32 at 6 deg E, from fabricated L2A scenes in
each zone to the EEA grid: no gap and no double along the border, the pixels of each source tile
reprojected independently, fuel following each pixel's climate zone, km² that add up, a plan whose
counts the run then meets, a rerun that redoes nothing, and bad input refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.warp import reproject
from shapely.geometry import box

from conftest import REPO, TINY_TRAIN
from landcover.bands import SEASONS
from landcover.config import load_params
from landcover.errors import LandcoverError
from landcover.fuel import lookup_table
from landcover.synth.l2a import scenes_over, write_catalog

AOI = box(5.994, 45.000, 6.006, 45.004)  # about 940 m x 445 m, across the 6 deg E zone border
SPLIT = 45.002  # the statistics' two polygons: south and north of it
SETTINGS = {**TINY_TRAIN, "map.tile_size": 64, "mosaic.plausibility.min_land_pixels": 100, "map.block": 64}


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
    return root


def _params(**more):
    return load_params(REPO / "params.yaml", {**SETTINGS, **more})


@pytest.fixture(scope="module")
def model_uri(tiny_model, tmp_path_factory) -> str:
    """The tiny model with its class head sharpened: several classes on the map, so a wrong merge or
    crosswalk row would show (the smoke-trained one predicts one class everywhere)."""
    from test_inference import varied_model_uri

    return varied_model_uri(_params(), tiny_model.model_uri, tmp_path_factory.mktemp("varied"), 1.0)


def test_a_two_zone_region_maps_onto_the_eea_grid(region, model_uri, tmp_path) -> None:
    from landcover.region.stage import run_map

    p = _params()
    out = tmp_path / "out"
    kwargs = dict(source=str(region / "catalog" / "catalog.json"), model_uri=model_uri,
                  climate_zones_file=region / "climate.gpkg", zones_file=region / "units.gpkg")
    planned = run_map(p, region / "aoi.gpkg", 2023, out, plan_only=True, **kwargs).plan
    assert set(planned["tiles_per_zone"]) == {"EPSG:32631", "EPSG:32632"}
    assert not (out / "eea").exists()  # the plan reads no pixel

    result = run_map(p, region / "aoi.gpkg", 2023, out, **kwargs)
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
    stats = [r for r in _csv(out / "stats.csv") if r["layer"] == "landcover"]
    units = gpd.read_file(region / "units.gpkg")
    for name, polygon in zip(units["name"], units.geometry, strict=True):
        km2 = sum(float(r["km2"]) for r in stats if r["zone"] == name)
        assert abs(km2 - polygon.area / 1e6) <= polygon.length / 1e3 * 0.01  # at most a pixel's width of edge
        assert not [r for r in stats if r["zone"] == name and r["code"] == "0"]  # all of it mapped

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
