"""`landcover labels`: reference vectors (any CRS) and rasters (by mode) on each tile's grid, with
known geometry; crosswalks, unmapped values, priority between references, reruns."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import LineString, box
from shapely.ops import transform as shp_transform

from conftest import REPO
from landcover.cli import main as cli_main
from landcover.config import load_params
from landcover.dataset import discover_tiles
from landcover.labels.stage import run_labels
from landcover.synth.generate import SynthOptions, generate


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """One tile of 64 px at 10 m: its label.tif is removed, as if the tile came from `mosaic`."""
    root = tmp_path / "data"
    generate(root, SynthOptions(cities=1, tiles_per_city=1, size=64, seed=5))
    for tile in discover_tiles(root)[0]:
        tile.label_path.unlink()
    return root


def grid_of(data: Path):
    tile = discover_tiles(data)[0][0]
    with rasterio.open(tile.season_path("summer")) as src:
        return tile, src.crs, src.transform


def read_label(tile) -> np.ndarray:
    with rasterio.open(tile.label_path) as src:
        assert src.dtypes[0] == "uint8" and src.count == 1 and src.colormap(1)[7][:3] == (255, 255, 153)
        return src.read(1)


def to_4326(geometry, crs):
    from pyproj import Transformer

    return shp_transform(Transformer.from_crs(crs, 4326, always_xy=True).transform, geometry.segmentize(5))


def test_vectors_in_another_crs_land_on_known_pixels(data: Path) -> None:
    """Polygons by pixel centre, a road line burning every pixel it touches, in EPSG:4326."""
    tile, crs, t = grid_of(data)
    west, north = t.c, t.f
    features = [
        (box(west, north - 640, west + 320, north), "crops"),  # left half
        (box(west + 320, north - 640, west + 640, north - 320), "pine"),  # bottom right quarter
        (box(west + 320, north - 320, west + 640, north), "quarry-x"),  # top right: not in the crosswalk
        (LineString([(west, north - 105), (west + 640, north - 105)]), "motorway"),  # along row 10
        (LineString([(west + 5, north), (west + 5, north - 640)]), "footpath"),  # unmapped: leaves column 0 alone
    ]
    frame = gpd.GeoDataFrame({"kind": [k for _, k in features]},
                             geometry=[to_4326(g, crs) for g, _ in features], crs=4326)
    frame.to_file(data.parent / "ref.gpkg")
    p = load_params(REPO / "params.yaml", {"labels.crosswalk": {"crops": 7, "pine": 9, "motorway": 1}})
    result = run_labels(p, data, [data.parent / "ref.gpkg"], attribute="kind")
    assert result.written == [tile.key] and not result.failed
    label = read_label(tile)
    want = np.zeros((64, 64), np.uint8)
    want[:, :32] = 7
    want[32:, 32:] = 9
    want[10, :] = 1
    assert np.array_equal(label, want)
    assert result.unmapped == {"quarry-x": 1, "footpath": 1} and result.unmapped_pixels == 32 * 32 - 32
    record = json.loads((tile.directory / "label.json").read_text())
    assert record["class_pixels"]["Roads"] == 64 and record["unmapped_values"] == {"quarry-x": 1, "footpath": 1}


def write_reference(path: Path, values: np.ndarray, crs, west: float, north: float, res: float, nodata=None) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype=values.dtype, crs=crs, transform=from_origin(west, north, res, res), nodata=nodata) as dst:
        dst.write(values, 1)


def test_rasters_are_reprojected_by_mode_through_a_preset(data: Path) -> None:
    """A WorldCover-coded reference at 5 m: in each 10 m pixel 3 of 4 sub-pixels are cropland (40),
    one grassland (30): the mode gives Agricultural. Tree cover (10) is unlabelled by the preset,
    an unknown code (55) is counted, the reference's nodata stays 0."""
    tile, crs, t = grid_of(data)
    ref = np.full((128, 128), 40, np.uint8)
    ref[1::2, 1::2] = 30
    ref[:, 64:] = 10
    ref[64:, 64:] = 55
    ref[:8, :] = 0  # nodata
    write_reference(data.parent / "wc.tif", ref, crs, t.c, t.f, 5.0, nodata=0)
    result = run_labels(load_params(REPO / "params.yaml"), data, [data.parent / "wc.tif"], preset="worldcover")
    label = read_label(tile)
    assert (label[4:, :32] == 7).all() and (label[:4] == 0).all()
    assert (label[:, 32:] == 0).all()
    assert result.unmapped == {"55": 64 * 64} and result.unmapped_pixels == 32 * 32


def test_first_reference_wins_and_integer_codes_need_no_crosswalk(data: Path) -> None:
    """Without a crosswalk, values 1..10 are class codes (12 is not, and is counted); a second
    reference only fills what the first left unlabelled, even in another CRS."""
    tile, crs, t = grid_of(data)
    first = np.zeros((64, 64), np.uint8)
    first[:, :20] = 5
    first[:, 20:30] = 12
    write_reference(data.parent / "first.tif", first, crs, t.c, t.f, 10.0)
    second = np.full((300, 300), 6, np.uint8)  # a big EPSG:3035 raster of grassland
    from rasterio.warp import transform_bounds

    w, s, e, n = transform_bounds(crs, "EPSG:3035", t.c, t.f - 640, t.c + 640, t.f)
    write_reference(data.parent / "second.tif", second, "EPSG:3035", w - 1000, n + 1000, 10.0)
    result = run_labels(load_params(REPO / "params.yaml"), data,
                        [data.parent / "first.tif", data.parent / "second.tif"])
    label = read_label(tile)
    assert (label[:, :20] == 5).all() and (label[:, 20:] == 6).all()
    assert result.unmapped == {"12": 640}


def test_rerun_skips_and_a_foreign_label_is_never_replaced(data: Path, capsys) -> None:
    tile, crs, t = grid_of(data)
    write_reference(data.parent / "ref.tif", np.full((64, 64), 3, np.uint8), crs, t.c, t.f, 10.0)
    args = ["labels", "--data", str(data), "--reference", str(data.parent / "ref.tif")]
    assert cli_main(args) == 0
    stamp = tile.label_path.stat().st_mtime_ns
    assert cli_main(args) == 0
    assert tile.label_path.stat().st_mtime_ns == stamp and "1 up to date" in capsys.readouterr().out
    (tile.directory / "label.json").unlink()  # now label.tif looks hand-made
    assert cli_main(args) == 1
    assert "did not write" in capsys.readouterr().err and tile.label_path.stat().st_mtime_ns == stamp
    assert cli_main([*args, "--overwrite"]) == 0


def test_bad_references_are_named(data: Path, capsys) -> None:
    (data.parent / "broken.tif").write_bytes(b"not a tiff")
    assert cli_main(["labels", "--data", str(data), "--reference", str(data.parent / "broken.tif")]) == 1
    assert "broken.tif" in capsys.readouterr().err
    assert cli_main(["labels", "--data", str(data), "--reference", str(data.parent / "missing.gpkg")]) == 1
    assert "missing.gpkg: reference not found" in capsys.readouterr().err
    gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 1, 1)], crs=4326).to_file(data.parent / "v.gpkg")
    assert cli_main(["labels", "--data", str(data), "--reference", str(data.parent / "v.gpkg")]) == 1
    assert "needs --attribute (its attributes: a)" in capsys.readouterr().err
