"""Fire-model inputs: the climate-aware crosswalk and `landcover landscape` (FlamMap LCP, ELMFIRE
layers) read back with GDAL; terrain from a tilted plane in a geographic CRS; slope and aspect
against `gdaldem`; a DEM that misses a tile; batch inference with `predict.landscape`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from conftest import REPO, TINY_TRAIN
from landcover.cli import main as cli_main
from landcover.config import load_params
from landcover.dataset import discover_tiles, read_cities
from landcover.errors import LandcoverError
from landcover.inference.stage import run_predict
from landcover.landscape.stage import run_landscape
from landcover.landscape.terrain import horn, terrain
from landcover.landscape.writers import LAYERS

SLOPE_X, SLOPE_Y = 0.10, -0.05  # metres of rise per metre east and north


@pytest.fixture(scope="module")
def params():
    return load_params(REPO / "params.yaml", TINY_TRAIN)


@pytest.fixture(scope="module")
def fuelmaps(tiny_dataset, tiny_model, params, tmp_path_factory) -> Path:
    """Batch-inference outputs of the tiny dataset: 6 cities, one per climate zone, 2 tiles each."""
    out = tmp_path_factory.mktemp("fuel") / "fuelmaps"
    result = run_predict(params, tiny_dataset, out, tiny_model.model_uri)
    assert not result.failed and len(result.written) == 12
    return out


def tile_grid(folder: Path):
    with rasterio.open(folder / "fuel.tif") as src:
        return src.crs, src.transform, src.shape, src.bounds


def plane_dem(path: Path, folder: Path, margin_deg: float = 0.003) -> tuple[float, float]:
    """A DEM in EPSG:4326 (0.00025 degrees, about 20 x 28 m, coarser than the tile like Copernicus
    GLO-30) covering the tile: z = 500 + SLOPE_X (X - X0) + SLOPE_Y (Y - Y0), a plane in the tile's
    UTM coordinates, sampled at every geographic pixel centre."""
    crs, transform, shape, bounds = tile_grid(folder)
    w, s, e, n = transform_bounds(crs, "EPSG:4326", *bounds)
    res = 0.00025
    west, north = w - margin_deg, n + margin_deg
    width, height = int((e + margin_deg - west) / res), int((north - s + margin_deg) / res)
    lon = west + (np.arange(width) + 0.5) * res
    lat = north - (np.arange(height) + 0.5) * res
    lon, lat = np.meshgrid(lon, lat)
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    x0, y0 = bounds.left, bounds.bottom
    z = (500 + SLOPE_X * (x - x0) + SLOPE_Y * (y - y0)).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(west, north, res, res), nodata=-32768) as dst:
        dst.write(z, 1)
    return x0, y0


def one_tile(fuelmaps: Path, tmp_path: Path, index: int = 0) -> Path:
    """A fuel-map folder with one tile (copied), for runs whose DEM covers only that tile."""
    tile = discover_tiles(fuelmaps)[0][index]
    dst = tmp_path / "one" / tile.city_id / tile.tile_id
    shutil.copytree(tile.directory, dst)
    return dst


def test_a_tilted_plane_in_a_geographic_crs_gives_its_slope_and_aspect(fuelmaps, params, tmp_path) -> None:
    tile_dir = one_tile(fuelmaps, tmp_path)
    x0, y0 = plane_dem(tmp_path / "dem.tif", tile_dir)
    result = run_landscape(params, tmp_path / "one", tmp_path / "out", str(tmp_path / "dem.tif"))
    assert len(result.written) == 1 and not result.failed
    out = tmp_path / "out" / tile_dir.parent.name / tile_dir.name
    with rasterio.open(out / "elmfire/slp.tif") as s, rasterio.open(out / "elmfire/asp.tif") as a, \
            rasterio.open(out / "elmfire/dem.tif") as d:
        slope, aspect, dem = s.read(1), a.read(1), d.read(1)
        transform = d.transform
    want_slope = np.degrees(np.arctan(np.hypot(SLOPE_X, SLOPE_Y)))  # 6.38 degrees
    want_aspect = np.degrees(np.arctan2(-SLOPE_X, -SLOPE_Y)) % 360  # downhill: 296.57, west-north-west
    crs, grid, shape, _ = tile_grid(tile_dir)
    exact = terrain(str(tmp_path / "dem.tif"), crs, grid, shape, "tile")  # before rounding to int16
    assert np.abs(exact.slope - want_slope).max() < 0.02  # edges included: no artefacts
    assert np.abs(exact.aspect - want_aspect).max() < 0.2
    assert np.abs(slope - want_slope).max() <= 0.5 and np.abs(aspect - want_aspect).max() <= 0.5  # int16 degrees
    rows, cols = np.mgrid[0:dem.shape[0], 0:dem.shape[1]]
    x, y = transform * (cols + 0.5, rows + 0.5)
    assert np.abs(dem - np.round(500 + SLOPE_X * (x - x0) + SLOPE_Y * (y - y0))).max() <= 1


def test_horn_gives_the_exact_plane_and_north_east_south_west() -> None:
    yy, xx = np.mgrid[0:6, 0:6] * 10.0
    for rise_x, rise_y, facing in ((1, 0, 270), (-1, 0, 90), (0, 1, 180), (0, -1, 0)):
        z = rise_x * xx - rise_y * yy  # rows go south: a rise to the north is a fall along rows
        slope, aspect = horn(z, 10, 10)
        assert np.allclose(slope, 45) and np.allclose(aspect, facing), (rise_x, rise_y, aspect[0, 0])
    slope, aspect = horn(np.zeros((5, 5)), 10, 10)
    assert (slope == 0).all() and (aspect == 0).all()  # flat: 0, as gdaldem -zero_for_flat


def gdaldem_or_skip() -> str:
    """gdaldem's path. Missing, the comparison fails under CI=true (`.ci/run` installs gdal-bin, so a
    missing gdaldem there is a broken CI, not a reason to stop checking) and is skipped elsewhere."""
    path = shutil.which("gdaldem")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but gdaldem (Debian gdal-bin) is not on PATH: .ci/run installs it, and the slope "
                        "and aspect comparison must run in CI")
        pytest.skip("gdaldem (Debian gdal-bin) not installed: `apt-get install gdal-bin` runs this comparison "
                    "(under CI=true its absence fails)")
    return path


def test_slope_and_aspect_equal_gdaldem(tmp_path) -> None:
    gdaldem = gdaldem_or_skip()
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:80, 0:90]
    z = 800 + 60 * np.sin(xx / 9) * np.cos(yy / 7) + 3 * rng.standard_normal((80, 90))
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=90, height=80, count=1, dtype="float32", crs="EPSG:32631",
                       transform=from_origin(400000, 4800000, 10, 10)) as dst:
        dst.write(z.astype(np.float32), 1)
    slope, aspect = horn(z.astype(np.float32).astype(np.float64), 10, 10)
    for what, mine, extra in (("slope", slope, []), ("aspect", aspect, ["-zero_for_flat"])):
        subprocess.run([gdaldem, what, str(path), str(tmp_path / f"{what}.tif"), "-q", *extra], check=True)
        with rasterio.open(tmp_path / f"{what}.tif") as src:
            theirs = src.read(1)[1:-1, 1:-1]  # gdaldem leaves the edge pixels nodata
        diff = np.abs(theirs - mine)
        if what == "aspect":
            diff = np.minimum(diff, 360 - diff)
        # gdaldem works in float32: its aspect differs in the third decimal where the slope is small
        assert diff.max() < (1e-3 if what == "slope" else 0.02), (what, diff.max())


def test_lcp_and_elmfire_layers_read_back_with_gdal(fuelmaps, params, tmp_path) -> None:
    tile_dir = one_tile(fuelmaps, tmp_path, index=5)
    plane_dem(tmp_path / "dem.tif", tile_dir)
    assert not run_landscape(params, tmp_path / "one", tmp_path / "out", str(tmp_path / "dem.tif")).failed
    out = tmp_path / "out" / tile_dir.parent.name / tile_dir.name
    crs, transform, shape, _ = tile_grid(tile_dir)
    with rasterio.open(tile_dir / "fuel.tif") as f, rasterio.open(tile_dir / "landcover.tif") as lc:
        fuel, landcover = f.read(1).astype(np.int16), lc.read(1)
    zone = json.loads((tile_dir / "provenance.json").read_text())["crosswalk_zone"]
    with rasterio.open(out / "landscape.lcp") as lcp:
        assert lcp.driver == "LCP" and lcp.count == 8 and lcp.dtypes[0] == "int16"
        assert (lcp.crs, lcp.transform, lcp.shape) == (crs, transform, shape)
        assert lcp.descriptions == ("Elevation", "Slope", "Aspect", "Fuel models", "Canopy cover", "Canopy height",
                                    "Canopy base height", "Canopy bulk density")
        units = {k: lcp.tags(i + 1).get(f"{k}_UNIT_NAME") for i, k in enumerate(
            ("ELEVATION", "SLOPE", "ASPECT", "FUEL_MODEL", "CANOPY_COV", "CANOPY_HT", "CBH", "CBD"))}
        assert units["ELEVATION"] == "Meters" and units["SLOPE"] == "Degrees" and units["ASPECT"] == "Azimuth degrees"
        assert units["CANOPY_COV"] == "Percent" and units["CANOPY_HT"] == "Meters x 10"
        assert units["CBH"] == "Meters x 10" and units["CBD"] == "kg/m^3 x 100"
        lcp_bands = lcp.read()
    assert (out / "landscape.prj").is_file()
    assert rasterio.crs.CRS.from_wkt((out / "landscape.prj").read_text()) == crs
    want_fuel = np.where(landcover == 0, -9999, fuel)
    assert np.array_equal(lcp_bands[3], want_fuel)
    canopy = params.fuel.canopy_for(zone)
    for band, name in ((4, "cc"), (5, "ch"), (6, "cbh"), (7, "cbd")):
        factor = LAYERS[name][2]
        want = np.zeros(shape, np.int16)
        for code, row in canopy.items():
            want[landcover == code] = round(getattr(row, name) * factor)
        want[landcover == 0] = -9999
        assert np.array_equal(lcp_bands[band], want), name
    for k, name in enumerate(LAYERS):
        with rasterio.open(out / "elmfire" / f"{name}.tif") as src:
            assert (src.crs, src.transform, src.shape) == (crs, transform, shape)
            assert src.count == 1 and src.dtypes[0] == "int16" and src.nodata == -9999
            assert np.array_equal(src.read(1), lcp_bands[k]), name
    for name in ("adj", "phi"):
        with rasterio.open(out / "elmfire" / f"{name}.tif") as src:
            assert src.dtypes[0] == "float32" and (src.read(1) == 1).all()
    fragment = (out / "elmfire/elmfire.data.fragment").read_text()
    for key, stem in (("FBFM_FILENAME", "fbfm40"), ("CBD_FILENAME", "cbd"), ("PHI_FILENAME", "phi")):
        assert f"'{stem}'" in fragment.split(key, 1)[1].splitlines()[0] and (out / f"elmfire/{stem}.tif").is_file()
    assert f"COMPUTATIONAL_DOMAIN_XLLCORNER = {transform.c:.3f}" in fragment
    assert f"COMPUTATIONAL_DOMAIN_YLLCORNER = {transform.f - 10 * shape[0]:.3f}" in fragment
    item = json.loads((out / "item.json").read_text())
    ch = item["assets"]["elmfire_ch"]["raster:bands"][0]
    assert ch["unit"] == "m" and ch["scale"] == pytest.approx(0.1) and ch["nodata"] == -9999
    record = json.loads((out / "landscape.json").read_text())
    assert record["climate_zone"] == zone and record["units"]["cbd"]["unit"] == "kg/m3 x 100"
    # a rerun skips the tile; a canopy height map replaces the table on forest pixels
    assert run_landscape(params, tmp_path / "one", tmp_path / "out", str(tmp_path / "dem.tif")).skipped
    with rasterio.open(tmp_path / "ch.tif", "w", driver="GTiff", width=shape[1], height=shape[0], count=1,
                       dtype="float32", crs=crs, transform=transform) as dst:
        dst.write(np.full(shape, 25.0, np.float32), 1)
    code = cli_main(["--params", str(REPO / "params.yaml"), "landscape", "--fuelmaps", str(tmp_path / "one"),
                     "--dem", str(tmp_path / "dem.tif"), "--out", str(tmp_path / "out"),
                     "--canopy-raster", f"ch={tmp_path / 'ch.tif'}"])
    assert code == 0
    with rasterio.open(out / "elmfire/ch.tif") as src:
        ch = src.read(1)
    forest = np.isin(landcover, list(canopy))
    assert (ch[forest] == 250).all() and (ch[~forest & (landcover > 0)] == 0).all()


def test_a_dem_that_misses_a_tile_is_named(fuelmaps, params, tmp_path, capsys) -> None:
    tile_dir = one_tile(fuelmaps, tmp_path)
    plane_dem(tmp_path / "dem.tif", tile_dir, margin_deg=-0.001)  # stops short of the tile's edges
    code = cli_main(["--params", str(REPO / "params.yaml"), "landscape", "--fuelmaps", str(tmp_path / "one"),
                     "--dem", str(tmp_path / "dem.tif"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    key = f"{tile_dir.parent.name}/{tile_dir.name}"
    assert code == 1 and f"failed {key}: {key}: the DEM" in err and "does not cover" in err
    assert not (tmp_path / "out" / key / "landscape.lcp").exists()


def test_zone_rows_apply_by_climate_zone(tiny_dataset, tiny_model, tmp_path) -> None:
    """Every tile's fuel is its zone's row of the crosswalk applied to its land cover; a zone row
    that maps every class to GR1 shows up in that zone's tiles only."""
    p = load_params(REPO / "params.yaml", {**TINY_TRAIN, "fuel.zones.atlantic": {c: 101 for c in range(1, 11)}})
    result = run_predict(p, tiny_dataset, tmp_path / "out", tiny_model.model_uri)
    assert not result.failed
    zones = {c.city_id: c.climate_zone for c in read_cities(tiny_dataset / "cities.csv").values()}
    seen = set()
    for tile in discover_tiles(tiny_dataset)[0]:
        folder = tmp_path / "out" / tile.city_id / tile.tile_id
        provenance = json.loads((folder / "provenance.json").read_text())
        zone = zones[tile.city_id]
        assert provenance["crosswalk_zone"] == zone
        row = p.fuel.for_zone(zone)
        assert provenance["crosswalk"] == {str(k): v for k, v in sorted(row.items())}
        with rasterio.open(folder / "landcover.tif") as lc, rasterio.open(folder / "fuel.tif") as f:
            landcover, fuel = lc.read(1), f.read(1)
            assert f.tags()["crosswalk_zone"] == zone
        lut = np.zeros(256, np.uint8)
        for code, model in row.items():
            lut[code] = model
        assert np.array_equal(fuel, lut[landcover])
        seen.add(zone)
        if zone == "atlantic":
            assert set(np.unique(fuel)) <= {0, 101}
    assert len(seen) == 6


def test_batch_inference_writes_the_landscape_when_asked(tiny_dataset, tiny_model, fuelmaps, tmp_path) -> None:
    """predict.landscape: the tile folders get the LCP and ELMFIRE layers, listed in the STAC Item
    with their units; the run summary counts them, and the tile the DEM misses is a failure."""
    tile = discover_tiles(tiny_dataset)[0][0]
    plane_dem(tmp_path / "dem.tif", fuelmaps / tile.city_id / tile.tile_id)
    p = load_params(REPO / "params.yaml", {**TINY_TRAIN, "predict.landscape": True,
                                           "landscape.dem": str(tmp_path / "dem.tif")})
    with pytest.raises(LandcoverError, match="no landscape stage was handed"):  # stages are wired, not imported
        run_predict(p, tiny_dataset, tmp_path / "out", tiny_model.model_uri)
    result = run_predict(p, tiny_dataset, tmp_path / "out", tiny_model.model_uri, landscape=run_landscape)
    folder = tmp_path / "out" / tile.city_id / tile.tile_id
    assert (folder / "landscape.lcp").is_file() and (folder / "elmfire/fbfm40.tif").is_file()
    item = json.loads((folder / "item.json").read_text())
    assert {"landcover", "fuel", "confidence", "landscape", "elmfire_dem", "elmfire_cbd"} <= set(item["assets"])
    assert item["assets"]["elmfire_cbd"]["raster:bands"][0]["unit"] == "kg/m3"
    summary = json.loads((tmp_path / "out/run_summary.json").read_text())
    assert summary["tiles_written"] == 12 and summary["landscape"]["tiles_written"] == 1
    assert len(result.failed) == 11 and all(k.endswith("(landscape)") for k in result.failed)


def test_the_single_column_crosswalk_still_loads(tmp_path) -> None:
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in ("zones", "canopy", "canopy_zones"):
        raw["fuel"].pop(key)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    p = load_params(tmp_path / "params.yaml")
    assert p.fuel.for_zone("mediterranean") == p.fuel.crosswalk and p.fuel.canopy_for("boreal") == {}
