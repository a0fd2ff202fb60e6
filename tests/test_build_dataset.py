"""From Sentinel-2 L2A scenes and a reference map to a trained model: `landcover mosaic` and
`landcover labels` make tiles that pass `landcover validate` and run through split, train,
evaluate and predict unchanged; the build-dataset flow runs the same code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.transform
from pyproj import Transformer
from shapely.geometry import LineString, box
from shapely.ops import transform as shp_transform

from conftest import REPO, TINY_TRAIN
from landcover.cli import main as cli_main
from landcover.dataset import City, read_cities, write_cities
from landcover.mosaic.grid import aoi_tiles, city_tiles
from landcover.synth.l2a import scenes_over, write_catalog

YEAR = 2023
SIZE = 64
CITIES = [City("FR001", "Toulouse", "FR", 43.6047, 1.4442, "atlantic"),
          City("ES002", "Zaragoza", "ES", 41.6488, -0.8891, "mediterranean"),
          City("DE003", "Leipzig", "DE", 51.3397, 12.3731, "continental"),
          City("AT004", "Innsbruck", "AT", 47.2692, 11.4041, "alpine"),
          City("FI005", "Tampere", "FI", 61.4978, 23.7610, "boreal")]


def reference_frame(tiles) -> gpd.GeoDataFrame:
    """Per tile: four quadrants of classes (codes as the attribute) and a road across."""
    rows = []
    for k, tile in enumerate(tiles):
        w, s, e, n = tile.bounds
        mx, my = (w + e) / 2, (s + n) / 2
        to4326 = Transformer.from_crs(tile.epsg, 4326, always_xy=True).transform
        for shape, code in ((box(w, my, mx, n), 2 + k % 3), (box(mx, my, e, n), 7), (box(w, s, mx, my), 8 + k % 2),
                            (box(mx, s, e, my), 5 + k % 2), (LineString([(w, my + 5), (e, my + 5)]), 1)):
            rows.append((code, shp_transform(to4326, shape.segmentize(20))))
    return gpd.GeoDataFrame({"code": [c for c, _ in rows]}, geometry=[g for _, g in rows], crs=4326)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A static STAC catalog of scenes over every city, a cities.csv and a reference GeoPackage."""
    root = tmp_path_factory.mktemp("l2a")
    tiles = [city_tiles(c, 1, SIZE)[0] for c in CITIES]
    scenes = []
    for k, tile in enumerate(tiles):
        for s in scenes_over(tile.bounds, tile.epsg, YEAR, per_season=2, seed=k):
            s.id = f"{s.id}_{k}"
            scenes.append(s)
    write_catalog(scenes, root / "catalog")
    write_cities(root / "cities.csv", CITIES)
    reference_frame(tiles).to_file(root / "reference.gpkg")
    return root


def test_city_tiles_are_centred_and_aoi_tiles_cut_to_the_area() -> None:
    city = CITIES[0]
    tiles = city_tiles(city, 3, 100)
    assert [t.tile_id for t in tiles[:4]] == ["r00c00", "r00c01", "r00c02", "r01c00"] and len(tiles) == 9
    centre = tiles[4]
    x, y = Transformer.from_crs(4326, centre.epsg, always_xy=True).transform(city.lon, city.lat)
    w, s, e, n = centre.bounds
    assert abs((w + e) / 2 - x) <= 5 and abs((s + n) / 2 - y) <= 5 and centre.epsg == 32631
    assert all(t.west % 10 == 0 and t.north % 10 == 0 for t in tiles)
    # an L-shaped area 2,500 m x 1,700 m: 2 x 2 tiles of 128 px, the last row and column cut,
    # and the tile the L leaves out is not made
    to4326 = Transformer.from_crs(32631, 4326, always_xy=True).transform
    ell = box(370000, 4826300, 372500, 4828000).difference(box(371200, 4826300, 372500, 4826900))
    tiles = aoi_tiles(shp_transform(to4326, ell.segmentize(10)), "X", 128)
    assert [(t.tile_id, t.width, t.height) for t in tiles] == [
        ("r00c00", 128, 128), ("r00c01", 122, 128), ("r01c00", 128, 42)]
    assert tiles[0].west == 370000 and tiles[0].north == 4828000


@pytest.mark.slow
def test_mosaic_and_labels_make_a_dataset_the_pipeline_trains_on(sources, tmp_path, monkeypatch,
                                                                 mlflow_store, capsys) -> None:
    """Every subcommand, each given its own output folder, run from a folder standing for the
    repository: the dataset trains, and nothing is written into the repository (an ad-hoc run
    must never overwrite the pipeline's DVC-tracked metrics, plots or reports)."""
    repo, work = tmp_path / "repo", tmp_path / "work"
    repo.mkdir()
    (repo / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(repo)
    tiny = [f"--set={k}={v}" for k, v in {**TINY_TRAIN, "train.epochs": 1}.items()]
    params = [*tiny, "--set=mosaic.plausibility.min_land_pixels=100"]

    def run(*args: str) -> str:
        code = cli_main([*params, *args])
        captured = capsys.readouterr()
        assert code == 0, f"landcover {args[0]} failed:\n{captured.out}\n{captured.err}"
        return captured.out

    data = work / "data"
    run("synth", "--out", str(work / "synth"), "--cities", "1", "--size", "32", "--quiet")
    run("mosaic", "--cities", str(sources / "cities.csv"), "--source", str(sources / "catalog/catalog.json"),
        "--year", str(YEAR), "--size", str(SIZE), "--out", str(data))
    run("labels", "--data", str(data), "--reference", str(sources / "reference.gpkg"), "--attribute", "code")
    assert set(read_cities(data / "cities.csv")) == {c.city_id for c in CITIES}
    manifest = json.loads((data / "tiles/FR001/r00c00/manifest.json").read_text())
    assert all(len(manifest["seasons"][s]["scenes"]) == 2 for s in ("spring", "summer", "autumn", "winter"))
    with rasterio.open(data / "tiles/FR001/r00c00/label.tif") as src:
        label = src.read(1)
    assert set(np.unique(label)) >= {1, 7} and (label > 0).mean() > 0.9

    run("validate", "--data", str(data), "--out", str(work / "validation"))
    assert json.loads((work / "validation/summary.json").read_text())["tiles_quarantined"] == 0
    split = work / "split.csv"
    out = run("split", "--data", str(data), "--out", str(split), "--valid", str(work / "validation/valid_tiles.csv"))
    assert str(work / "split.stats.json") in out and (work / "split.stats.json").is_file()
    out = run("pack", "--data", str(data), "--split", str(split), "--out", str(work / "store.zarr"))
    assert (work / "store.json").is_file() and str(work / "store.json") in out
    out = run("train", "--data", str(data), "--split", str(split), "--store", str(work / "store.zarr"),
              "--out", str(work / "model"))
    assert (work / "model/train_metrics.json").is_file() and (work / "model/train_curves.csv").is_file()
    assert str(work / "model/train_metrics.json") in out
    run("evaluate", "--data", str(data), "--split", str(split), "--run", str(work / "model/run.json"),
        "--out", str(work / "evaluation"))
    out = run("promote", "--run", str(work / "model/run.json"), "--metrics", str(work / "evaluation/metrics.json"),
              "--data", str(data), "--split", str(split))
    assert str(work / "evaluation/promotion.json") in out and (work / "evaluation/promotion.json").is_file()
    model = json.loads((work / "model/run.json").read_text())["model_uri"]
    run("predict", "--input", str(data), "--out", str(work / "outputs"), "--model", model)
    with rasterio.open(work / "outputs/FR001/r00c00/landcover.tif") as out_tif, \
            rasterio.open(data / "tiles/FR001/r00c00/summer.tif") as src:
        assert (out_tif.crs, out_tif.transform, out_tif.shape) == (src.crs, src.transform, src.shape)
    dem = work / "dem.tif"  # a gentle ramp over every city, in EPSG:4326
    with rasterio.open(dem, "w", driver="GTiff", width=600, height=500, count=1, dtype="float32", crs="EPSG:4326",
                       transform=rasterio.transform.from_origin(-5, 65, 0.05, 0.05)) as dst:
        dst.write(np.linspace(0, 900, 600, dtype=np.float32)[None, :].repeat(500, 0), 1)
    run("landscape", "--fuelmaps", str(work / "outputs"), "--dem", str(dem), "--out", str(work / "landscape"))
    assert (work / "landscape/FR001/r00c00/landscape.lcp").is_file()
    assert sorted(p.name for p in repo.iterdir()) == ["params.yaml"], sorted(repo.rglob("*"))


@pytest.mark.slow
def test_build_dataset_flow_runs_the_same_code(sources, tmp_path, monkeypatch, prefect_harness) -> None:
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("flows", None)
    from landcover.workflows.build_dataset import build_dataset

    params = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text().replace("min_land_pixels: 500", "min_land_pixels: 100")
    params.write_text(text.replace("  size: 2048 ", f"  size: {SIZE} "))
    cities = tmp_path / "two.csv"
    write_cities(cities, CITIES[:2])
    monkeypatch.chdir(tmp_path)
    summary = build_dataset(out="built", year=YEAR, cities=str(cities), source=str(sources / "catalog"),
                            references=[str(sources / "reference.gpkg")], attribute="code",
                            params_file=str(params))
    assert summary["mosaic"]["tiles_written"] == 2 and summary["labels"]["tiles_written"] == 2
    assert summary["validation"]["tiles_passed"] == 2
    assert Path("reports/datasets/built/validation/report.csv").is_file()
    # the flow's tiles equal the CLI's, byte for byte
    assert cli_main(["--params", str(params), "mosaic", "--cities", str(cities), "--source",
                     str(sources / "catalog"), "--year", str(YEAR), "--size", str(SIZE), "--out", "cli"]) == 0
    for season in ("spring", "winter"):
        a = Path(f"built/tiles/ES002/r00c00/{season}.tif").read_bytes()
        assert a == Path(f"cli/tiles/ES002/r00c00/{season}.tif").read_bytes()
