"""Area maps: one seamless, styled map per city from batch inference's tiles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from conftest import REPO, TINY_TRAIN
from landcover.areas.stage import SUMMARY, run_areas
from landcover.cli import main as cli_main
from landcover.config import load_params
from landcover.fuelmap import OUTPUTS
from landcover.inference.stage import run_predict
from landcover.synth.generate import SynthOptions, generate


@pytest.fixture(scope="module")
def params():
    return load_params(REPO / "params.yaml", TINY_TRAIN)


@pytest.fixture(scope="module")
def fuelmaps(tiny_model, params, tmp_path_factory) -> Path:
    """Two cities of three 48 px tiles each: t000 at the centre, t001 east of it, t002 north-east."""
    root = tmp_path_factory.mktemp("areas") / "data"
    generate(root, SynthOptions(cities=2, tiles_per_city=3, size=48, seed=4))
    out = root.parent / "fuelmaps"
    run_predict(params, root, out, tiny_model.model_uri)
    return out


def test_each_city_is_one_map_whose_pixels_are_its_tiles(fuelmaps, params, tmp_path) -> None:
    result = run_areas(params, fuelmaps, tmp_path / "areas", fuelmaps.parent / "data")
    assert sorted(result.written) == sorted(p.name for p in fuelmaps.iterdir() if p.is_dir())
    assert not result.failed and not result.left_out and not result.split_by_zone
    for city in result.written:
        folder = tmp_path / "areas" / city
        for raster in OUTPUTS:
            stem = Path(raster).stem
            assert cog_validate(folder / raster, quiet=True)[0]
            with rasterio.open(folder / raster) as area, rasterio.open(folder / f"{stem}.vrt") as vrt:
                assert (area.crs, area.transform, area.shape) == (vrt.crs, vrt.transform, vrt.shape)
                assert area.shape == (96, 96)  # three 48 px tiles in an L: a 2 x 2 tile extent
                pixels = area.read(1)
                assert np.array_equal(pixels, vrt.read(1))
                for tile in sorted((fuelmaps / city).iterdir()):
                    with rasterio.open(tile / raster) as src:
                        window = rasterio.windows.from_bounds(*src.bounds, transform=area.transform)
                        r, c = round(window.row_off), round(window.col_off)
                        assert np.array_equal(pixels[r:r + 48, c:c + 48], src.read(1)), (tile, raster)
                assert (pixels == 0).sum() == 48 * 48  # the quarter no tile covers is nodata
                if raster != "confidence.tif":  # a real code's colour (GeoTIFF colour tables hold no alpha)
                    code = 9 if raster == "landcover.tif" else 165
                    assert area.colormap(1)[code][:3] == vrt.colormap(1)[code][:3] != (0, 0, 0)
            assert (folder / f"{stem}.qml").is_file() and (folder / f"{stem}.sld").is_file()
        with rasterio.open(folder / "landcover.tif") as area:
            assert area.tags()["CLASS_9"] == "Coniferous Forest" and area.tags()["area"] == city
        assert "Coniferous Forest" in (folder / "landcover.vrt").read_text()  # GDAL category names
        quicklook = plt.imread(folder / "quicklook.png")  # four panels side by side, legends below
        assert quicklook.shape[1] > 3 * quicklook.shape[0] / 1.5 and quicklook[..., :3].std() > 0.05
        assert sorted(p.stem for p in (folder / "tiles").glob("*.png")) == sorted(
            p.name for p in (fuelmaps / city).iterdir())  # and one per tile
    summary = json.loads((tmp_path / "areas" / SUMMARY).read_text())
    assert {a["area"]: a["tiles"] for a in summary["areas"]} == dict.fromkeys(result.written, 3)

    again = run_areas(params, fuelmaps, tmp_path / "areas", fuelmaps.parent / "data")  # nothing changed: nothing redone
    assert sorted(again.skipped) == sorted(result.written) and not again.written


def test_zones_are_never_mixed_and_off_grid_tiles_are_reported(fuelmaps, params, tmp_path, capsys) -> None:
    """A tile in another UTM zone makes its own map; a tile shifted by half a pixel is left out."""
    copy = tmp_path / "fuelmaps"
    shutil.copytree(fuelmaps, copy)
    city = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    tiles = sorted(city.iterdir())
    for raster in OUTPUTS:
        with rasterio.open(tiles[1] / raster, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
            ds.crs = "EPSG:32610"  # far away: another zone
        with rasterio.open(tiles[2] / raster, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
            t = ds.transform
            ds.transform = rasterio.Affine(t.a, t.b, t.c + 5, t.d, t.e, t.f)
    code = cli_main(["--params", str(REPO / "params.yaml"), "areas", "--fuelmaps", str(copy),
                     "--out", str(tmp_path / "areas")])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads((tmp_path / "areas" / SUMMARY).read_text())
    maps = summary["split_by_zone"][city.name]
    assert len(maps) == 2 and f"{city.name}_32610" in maps
    assert list(summary["tiles_left_out"]) == [str(tiles[2])]
    assert "0.500, 0.000 px off" in summary["tiles_left_out"][str(tiles[2])]
    assert "several UTM zones" in out and "left out" in out
    with rasterio.open(tmp_path / "areas" / f"{city.name}_32610" / "landcover.tif") as ds:
        assert ds.crs.to_epsg() == 32610 and ds.shape == (48, 48)
