"""Validate stage: a corpus of deliberately broken tiles made from the synthetic generator.

Each defect lives in its own extra tile folder (a copy of a clean tile, then broken), so the
twelve generated tiles stay clean and must pass while every broken one is quarantined with its
reason. Rasters are 64 px; the Prefect flow test starts a temporary server once (~15 s).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.crs import CRS
from rasterio.shutil import copy as rio_copy
from rasterio.transform import Affine

from landcover.cli import main
from landcover.dataset import discover_tiles
from landcover.validation.metadata import tile_row
from landcover.validation.stage import run_validation
from landcover.validation.suite import REASONS

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


# ---------------------------------------------------------------- corpus helpers
def _rewrite(path: Path, data: np.ndarray | None = None, descriptions=None, **profile) -> None:
    """Rewrite a GeoTIFF with other pixels and/or profile (dtype, crs, transform, size...)."""
    with rasterio.open(path) as src:
        base = src.profile
        pixels = src.read() if data is None else data
        names = src.descriptions
    base.update(profile)
    base.update(count=pixels.shape[0], height=pixels.shape[1], width=pixels.shape[2],
                dtype=str(pixels.dtype))
    if np.issubdtype(pixels.dtype, np.floating):
        base["predictor"] = 3
    path.unlink()
    with rasterio.open(path, "w", **base) as dst:
        dst.write(pixels)
        if descriptions is not None or len(names) == pixels.shape[0]:
            dst.descriptions = descriptions if descriptions is not None else names


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _truncate_data(path: Path) -> None:
    """Header first (COG layout) then cut: opens, but blocks fail to decode."""
    cog = path.with_suffix(".cog")
    rio_copy(path, cog, driver="COG", blocksize=32, overviews="NONE", compress="DEFLATE")
    raw = cog.read_bytes()
    cog.unlink()
    path.write_bytes(raw[: int(len(raw) * 0.6)])


def _defect_shifted(d: Path) -> None:
    with rasterio.open(d / "summer.tif") as src:
        t = src.transform
    _rewrite(d / "summer.tif", transform=Affine(t.a, t.b, t.c + 10, t.d, t.e, t.f))


def _defect_other_crs(d: Path) -> None:
    with rasterio.open(d / "autumn.tif") as src:
        epsg = src.crs.to_epsg()
    _rewrite(d / "autumn.tif", crs=CRS.from_epsg(epsg + 1))


def _defect_geographic(d: Path) -> None:
    _rewrite(d / "winter.tif", crs=CRS.from_epsg(4326), transform=Affine(0.0001, 0, 10, 0, -0.0001, 50))


def _defect_big_label(d: Path) -> None:
    label = _read(d / "label.tif")
    _rewrite(d / "label.tif", np.pad(label, ((0, 0), (0, 16), (0, 16)), mode="edge"))


def _defect_float_nan(d: Path) -> None:
    x = _read(d / "spring.tif").astype(np.float32)
    x[0, 0, :5] = np.nan
    x[1, 3, :5] = np.inf
    _rewrite(d / "spring.tif", x, nodata=None)


def _defect_constant(d: Path) -> None:
    x = _read(d / "summer.tif")
    x[4] = 1234
    _rewrite(d / "summer.tif", x)


def _defect_saturated(d: Path) -> None:
    x = _read(d / "summer.tif")
    x[6, :2] = 65535  # 3 % of the band's pixels
    _rewrite(d / "summer.tif", x)


def _defect_bright(d: Path) -> None:
    x = _read(d / "autumn.tif")
    x[2] = np.clip(x[2].astype(np.int64) + 20000, 1, 60000).astype(np.uint16)
    _rewrite(d / "autumn.tif", x)


def _defect_all_nodata(d: Path) -> None:
    _rewrite(d / "winter.tif", np.zeros_like(_read(d / "winter.tif")))


def _defect_label_codes(d: Path) -> None:
    y = _read(d / "label.tif")
    y[0, :4, :4] = 42
    _rewrite(d / "label.tif", y)


def _defect_unlabelled(d: Path) -> None:
    y = _read(d / "label.tif")
    y[0, :48] = 0
    _rewrite(d / "label.tif", y)


def _defect_band_order(d: Path) -> None:
    x = _read(d / "spring.tif")
    with rasterio.open(d / "spring.tif") as src:
        names = list(src.descriptions)
    names[0], names[1] = names[1], names[0]
    _rewrite(d / "spring.tif", x[[1, 0, *range(2, 10)]], descriptions=names)


def _defect_20m(d: Path) -> None:
    with rasterio.open(d / "spring.tif") as src:
        t = src.transform
    for name in ("spring", "summer", "autumn", "winter", "label"):
        _rewrite(d / f"{name}.tif", transform=Affine(20.0, 0, t.c, 0, -20.0, t.f))


# tile folder name -> (how to break it, reasons that must be reported, file blamed or "")
DEFECTS: dict[str, tuple] = {
    "x_truncated": (lambda d: _truncate_data(d / "spring.tif"), {"unreadable"}, "spring.tif"),
    "x_truncated_head": (
        lambda d: (d / "summer.tif").write_bytes((d / "summer.tif").read_bytes()[:4000]),
        {"unreadable"}, "summer.tif"),
    "x_zero_bytes": (lambda d: (d / "autumn.tif").write_bytes(b""), {"unreadable"}, "autumn.tif"),
    "x_text_tif": (lambda d: (d / "winter.tif").write_text("not a tiff\n"), {"unreadable"}, "winter.tif"),
    "x_corrupt_label": (lambda d: (d / "label.tif").write_bytes(b"II*\x00" + b"\xff" * 64),
                        {"unreadable"}, "label.tif"),
    "x_band_count": (lambda d: _rewrite(d / "summer.tif", _read(d / "summer.tif")[:9]),
                     {"band_count", "band_names"}, "summer.tif"),
    "x_dtype": (lambda d: _rewrite(d / "autumn.tif", _read(d / "autumn.tif").astype(np.int32)),
                {"dtype"}, "autumn.tif"),
    "x_float_nan": (_defect_float_nan, {"dtype", "nonfinite"}, "spring.tif"),
    "x_other_crs": (_defect_other_crs, {"grid_mismatch"}, ""),
    "x_geographic": (_defect_geographic, {"crs", "pixel_size", "grid_mismatch"}, "winter.tif"),
    "x_shifted": (_defect_shifted, {"grid_mismatch"}, ""),
    "x_big_label": (_defect_big_label, {"grid_mismatch"}, ""),
    "x_20m": (_defect_20m, {"pixel_size"}, "spring.tif"),
    "x_band_order": (_defect_band_order, {"band_names"}, "spring.tif"),
    "x_label_codes": (_defect_label_codes, {"label_codes"}, "label.tif"),
    "x_unlabelled": (_defect_unlabelled, {"labelled_fraction"}, "label.tif"),
    "x_missing_season": (lambda d: (d / "winter.tif").unlink(), {"missing_file"}, ""),
    "x_missing_label": (lambda d: (d / "label.tif").unlink(), {"missing_file"}, ""),
    "x_all_nodata": (_defect_all_nodata, {"nodata"}, "winter.tif"),
    "x_constant": (_defect_constant, {"constant_band"}, "summer.tif"),
    "x_saturated": (_defect_saturated, {"saturated"}, "summer.tif"),
    "x_bright": (_defect_bright, {"reflectance_range"}, "autumn.tif"),
}
UNLISTED_CITY = "ZZ999"


def _sha_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny dataset plus one broken tile per defect, a bad id, a case-duplicate, an unlisted city."""
    root = tmp_path_factory.mktemp("corpus") / "data"
    shutil.copytree(tiny_dataset, root)
    tiles, _ = discover_tiles(root)
    clean = {t.key for t in tiles}
    src = tiles[0]
    city_dir = src.directory.parent
    for name, (breaker, _, _) in DEFECTS.items():
        shutil.copytree(src.directory, city_dir / name)
        breaker(city_dir / name)
    shutil.copytree(src.directory, city_dir / "t000..x")  # a dotted name cannot be a tile id
    shutil.copytree(src.directory, city_dir / "dup_tile")
    shutil.copytree(src.directory, city_dir / "DUP_TILE")  # same id on a case-insensitive disk
    shutil.copytree(src.directory, root / "tiles" / UNLISTED_CITY / "t000_p0_p0")
    return {"root": root, "clean": clean, "city": src.city_id}


@pytest.fixture(scope="module")
def corpus_run(corpus: dict, params, tmp_path_factory: pytest.TempPathFactory) -> dict:
    before = _sha_tree(corpus["root"])
    out = tmp_path_factory.mktemp("corpus_out") / "validation"
    result = run_validation(params, corpus["root"], out)
    return {"result": result, "out": out, "before": before,
            "rows": {f"{r['city_id']}/{r['tile_id']}": r for r in result.rows}}


# ---------------------------------------------------------------- tests
def test_each_defect_is_quarantined_with_its_reason(corpus, corpus_run):
    rows = corpus_run["rows"]
    for name, (_, reasons, file) in DEFECTS.items():
        row = rows[f"{corpus['city']}/{name}"]
        assert row["status"] == "quarantined", name
        assert set(row["reasons"]) == reasons, (name, row["failures"])
        if file:
            assert file in {f["file"] for f in row["failures"]}, (name, row["failures"])
        for f in row["failures"]:
            assert f["reason"] in REASONS and f["expectation"].startswith("expect_")


def test_failures_carry_observed_values(corpus, corpus_run):
    rows = corpus_run["rows"]

    def observed(name: str, column: str):
        row = rows[f"{corpus['city']}/{name}"]
        return next(f["observed"] for f in row["failures"] if f["column"] == column)

    assert observed("x_band_count", "summer_band_count") == 9
    assert observed("x_dtype", "autumn_dtype") == "int32"
    assert observed("x_all_nodata", "winter_nodata_fraction") == 1.0
    assert observed("x_label_codes", "label_code_max") == 42
    assert observed("x_missing_season", "missing_files") == "winter.tif"
    assert observed("x_missing_label", "missing_files") == "label.tif"
    assert observed("x_float_nan", "spring_nonfinite_count") == 10
    assert observed("x_geographic", "winter_crs") == "geographic EPSG:4326"
    assert observed("x_constant", "summer_band_std_min") == 0.0
    assert "label.tif: height 80 != 64, width 80 != 64" in observed("x_big_label", "grid_mismatch")
    assert observed("x_shifted", "grid_mismatch").startswith("summer.tif: transform")
    assert observed("x_other_crs", "grid_mismatch").startswith("autumn.tif: crs")
    for name, column, file in (("x_truncated", "spring_read_error", "spring.tif"),
                               ("x_zero_bytes", "autumn_read_error", "autumn.tif"),
                               ("x_text_tif", "winter_read_error", "winter.tif")):
        message = observed(name, column)
        assert message.startswith(f"{file}: ") and str(corpus["root"]) not in message


def test_ids_duplicates_and_cities(corpus, corpus_run):
    rows = corpus_run["rows"]
    city = corpus["city"]
    assert rows[f"{city}/t000..x"]["reasons"] == ["bad_id"]
    assert rows[f"{city}/dup_tile"]["reasons"] == ["duplicate_id"]
    assert rows[f"{city}/DUP_TILE"]["reasons"] == ["duplicate_id"]
    assert rows[f"{UNLISTED_CITY}/t000_p0_p0"]["reasons"] == ["unknown_city"]


def test_clean_tiles_pass_and_outputs_agree(corpus, corpus_run):
    result, out, rows = corpus_run["result"], corpus_run["out"], corpus_run["rows"]
    for key in corpus["clean"]:
        assert rows[key]["status"] == "passed" and rows[key]["failures"] == [], key
    with (out / "valid_tiles.csv").open() as f:
        valid = {f"{r['city_id']}/{r['tile_id']}" for r in csv.DictReader(f)}
    assert valid == corpus["clean"]
    with (out / "quarantine.csv").open() as f:
        quarantine = {f"{r['city_id']}/{r['tile_id']}": r["reasons"] for r in csv.DictReader(f)}
    assert len(quarantine) == len(DEFECTS) + 4
    assert quarantine[f"{corpus['city']}/x_all_nodata"] == "nodata"
    with (out / "report.csv").open() as f:
        report = list(csv.DictReader(f))
    assert [(r["city_id"], r["tile_id"]) for r in report] == sorted((r["city_id"], r["tile_id"]) for r in report)
    assert len(report) == len(rows) == len(json.loads((out / "report.json").read_text()))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tiles_checked"] == len(corpus["clean"]) + len(DEFECTS) + 4
    assert summary["tiles_passed"] == len(corpus["clean"])
    assert summary["quarantined_by_reason"]["unreadable"] == 5
    assert summary["quarantined_by_reason"]["duplicate_id"] == 2
    assert result.exceeds_threshold and summary["within_threshold"] is False
    assert (out / "data_docs" / "index.html").is_file()
    assert "landcover_tiles" in (out / "data_docs" / "index.html").read_text()


def test_raw_data_is_byte_identical_after_validation(corpus, corpus_run):
    assert _sha_tree(corpus["root"]) == corpus_run["before"]


def test_cli_exit_code_follows_threshold(corpus, corpus_run, tmp_path, capsys):
    base = ["--params", str(PARAMS), "validate", "--data", str(corpus["root"])]
    fraction = corpus_run["result"].quarantined_fraction
    assert main([*base, "--out", str(tmp_path / "a")]) == 1  # default 0.2: far exceeded
    err = capsys.readouterr().err
    assert "max_quarantined_fraction" in err and len(err.strip().splitlines()) == 1
    exact = corpus_run["result"].tiles_quarantined / corpus_run["result"].tiles_checked
    assert abs(exact - fraction) < 1e-6
    ok = ["--set", f"validate.max_quarantined_fraction={exact!r}"]
    assert main(["--params", str(PARAMS), *ok, *base[2:], "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert f"quarantined {corpus['city']}/x_truncated: unreadable[spring.tif]" in printed
    assert "data_docs/index.html" in printed
    a, b = (tmp_path / x for x in "ab")
    for name in ("report.csv", "report.json", "valid_tiles.csv", "quarantine.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()  # deterministic outputs


def test_cities_csv_missing_column_is_a_clear_error(dataset_copy, tmp_path, capsys):
    cities = dataset_copy / "cities.csv"
    lines = cities.read_text().splitlines()
    cities.write_text("\n".join(",".join(line.split(",")[:-1]) for line in lines) + "\n")
    code = main(["--params", str(PARAMS), "validate", "--data", str(dataset_copy), "--out", str(tmp_path)])
    assert code == 1
    assert "missing column(s) climate_zone" in capsys.readouterr().err


def test_streaming_reads_large_tiled_file_block_by_block(tmp_path, monkeypatch):
    """A tiled file is read one block at a time, never whole."""
    from landcover.dataset import TileRef
    from landcover.validation import metadata

    tile = tmp_path / "C1" / "t1"
    tile.mkdir(parents=True)
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": 128, "height": 128, "dtype": "uint16",
               "crs": CRS.from_epsg(32632), "transform": Affine(10, 0, 500000, 0, -10, 5000000),
               "nodata": 0, "tiled": True, "blockxsize": 32, "blockysize": 32}
    for s in ("spring", "summer", "autumn", "winter"):
        with rasterio.open(tile / f"{s}.tif", "w", count=10, **profile) as dst:
            dst.write(rng.integers(100, 3000, (10, 128, 128), dtype=np.uint16))
            dst.descriptions = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    with rasterio.open(tile / "label.tif", "w", count=1, **{**profile, "dtype": "uint8"}) as dst:
        dst.write(rng.integers(1, 11, (1, 128, 128), dtype=np.uint8))
    shapes = []
    real_read = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        out = real_read(self, *args, **kwargs)
        shapes.append(out.shape[-2:])
        return out

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    row = metadata.tile_row(TileRef("C1", "t1", tile))
    assert row["spring_read_error"] is None and row["grid_mismatch"] is None
    assert shapes and all(s == (32, 32) for s in shapes)
    assert abs(row["spring_band_mean_min"] - 1549.5) < 30  # streaming stats match uniform draws
    assert row["label_labelled_fraction"] == 1.0


def test_tile_row_of_clean_tile(tiny_dataset):
    tiles, bad = discover_tiles(tiny_dataset)
    assert not bad
    row = tile_row(tiles[0])
    assert row["missing_files"] is None and row["grid_mismatch"] is None
    assert row["spring_band_count"] == 10 and row["label_dtype"] == "uint8"


def test_prefect_flow_report_equals_cli_report(corpus, prefect_harness, tmp_path, monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("flows", None)
    from landcover.workflows.validate_tiles import validate_tiles

    params_file = tmp_path / "params.yaml"
    raw = yaml.safe_load(PARAMS.read_text())
    raw["validate"]["max_quarantined_fraction"] = 0.9
    params_file.write_text(yaml.safe_dump(raw))
    cli_out, flow_out = tmp_path / "cli", tmp_path / "flow"
    assert main(["--params", str(params_file), "validate", "--data", str(corpus["root"]),
                 "--out", str(cli_out)]) == 0
    summary = validate_tiles(data=str(corpus["root"]), out=str(flow_out), params_file=str(params_file))
    assert summary == json.loads((cli_out / "summary.json").read_text())
    for name in ("report.csv", "report.json", "valid_tiles.csv", "quarantine.csv", "summary.json",
                 "metadata.csv"):
        assert (flow_out / name).read_bytes() == (cli_out / name).read_bytes(), name
    assert (flow_out / "data_docs" / "index.html").is_file()
