"""`landcover mosaic` on fabricated L2A scenes with known clouds, shadows and offsets, as a static
STAC catalog (four catalogue styles) and as SAFE products: the composite is the per-pixel median of
the clear observations, exactly, in the default configuration (bilinear 20 m bands).

The expected composites come from `mosaic_reference.reference()`, written from the rule's statement
in map coordinates (each 10 m pixel centre, the 20 m pixels around it, their SCL and bands), not from
the code's grid arithmetic."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from landcover.bands import BANDS
from landcover.geo import TileGrid
from landcover.mosaic.opening import open_source
from landcover.mosaic.sources import season_window
from landcover.mosaic.stage import mosaic_tiles
from landcover.synth.l2a import FakeScene, fabricate, write_catalog, write_safe
from mosaic_reference import CITY, EPSG, MASKED, NORTH, SIZE, TILE, WEST, expected, mosaic, params, read_tile


@pytest.fixture(scope="module")
def scenes() -> list[FakeScene]:
    """Five summer scenes; the top-left 8 x 8 px are cloudy in every one of them."""
    made = fabricate(5, SIZE, seed=11, epsg=EPSG, west=WEST, north=NORTH)
    for s in made:
        s.scl[:4, :4] = 9
        s.truth[:, :8, :8] = 8500
    return made


@pytest.fixture(scope="module")
def catalog(scenes, tmp_path_factory) -> Path:
    return write_catalog(scenes, tmp_path_factory.mktemp("c1"), "earth-search-c1")


def test_composite_is_the_median_of_the_clear_observations(catalog, scenes, tmp_path) -> None:
    result = mosaic(catalog, tmp_path)
    assert result.written == ["c1/r00c00"] and not result.failed
    pixels, count, manifest = read_tile(tmp_path)
    want, want_count = expected(scenes)
    assert np.array_equal(pixels, want)
    assert np.array_equal(count, want_count)
    # cloud tops (8500 + 1000 stored) never leak; a pixel clear in no scene is nodata in every band
    assert pixels.max() < 8500
    assert (pixels[:, :8, :8] == 0).all() and (count[:8, :8] == 0).all()
    assert (pixels[:, 8:, 8:] > 0).all()
    summer = manifest["seasons"]["summer"]
    assert [s["id"] for s in summer["scenes"]] == sorted(s.id for s in scenes)
    assert {s["offset_source"] for s in summer["scenes"]} == {"raster:bands"}
    assert manifest["status"] == "complete" and manifest["request"]["year"] == 2023
    # seasons without scenes are nodata, never filled from another season
    spring, spring_count, _ = read_tile(tmp_path, "spring")
    assert (spring == 0).all() and (spring_count == 0).all()


def test_safe_folders_give_the_same_composite(scenes, tmp_path) -> None:
    for s in scenes:
        write_safe(s, tmp_path / "safe")
    result = mosaic(tmp_path / "safe", tmp_path / "out")
    assert not result.failed, result.failed
    pixels, _, manifest = read_tile(tmp_path / "out")
    assert np.array_equal(pixels, expected(scenes)[0])
    assert manifest["request"]["source"]["kind"] == "safe"
    assert {s["offset_source"] for s in manifest["seasons"]["summer"]["scenes"]} == {"raster:bands"}


@pytest.mark.parametrize("style", ["earth-search-c1", "planetary-computer", "earth-search-old", "safe"])
def test_the_offset_is_removed_exactly_once(scenes, style, tmp_path) -> None:
    """Half the scenes from before processing baseline 04.00 (no offset), half after (DN + 1000):
    the composite equals the one of the same reflectances stored without any offset."""
    mixed = [dataclasses.replace(s, offset=0, baseline="02.14") if k % 2 else s for k, s in enumerate(scenes)]
    if style == "safe":
        for s in mixed:
            write_safe(s, tmp_path / "src")
        source = tmp_path / "src"
    else:
        source = write_catalog(mixed, tmp_path / "src", style)
    assert not mosaic(source, tmp_path / "out").failed
    pixels, _, manifest = read_tile(tmp_path / "out")
    harmonised = [dataclasses.replace(s, offset=0, baseline="02.14") for s in scenes]
    assert np.array_equal(pixels, expected(harmonised)[0])
    offsets = {s["id"]: s["offset"] for s in manifest["seasons"]["summer"]["scenes"]}
    assert sorted(map(tuple, offsets.values())) == sorted([(-1000.0,)] * 3 + [(0.0,)] * 2)


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (1, 0), (0, 1)])
def test_20m_bands_land_on_the_right_pixels(tmp_path, dx, dy) -> None:
    """A 20 m band that is a linear ramp in map coordinates: bilinear onto the 10 m grid gives the ramp
    at every 10 m pixel centre, for a tile on the 20 m grid and tiles 10 m off it in x or in y.
    Shifting the expectation by one pixel breaks the equality."""
    scene = fabricate(1, SIZE, seed=2, epsg=EPSG, west=WEST - 200, north=NORTH + 200, cloud_share=0)[0]
    scene.scl[:] = 4
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    # 10 m truth whose 2 x 2 means (what the fabricator stores at 20 m) are the ramp at 20 m centres
    scene.truth[BANDS.index("B11")] = 2000 + 2 * (10 * xx + 5) + 3 * (10 * yy + 5)
    source = write_catalog([scene], tmp_path / "src")
    tile = TileGrid("c1", "r00c00", EPSG, WEST + 10 * dx, NORTH - 10 * dy, 32, 32)
    assert not mosaic(source, tmp_path / "out", params(**{"mosaic.resampling_20m": "bilinear"}), [tile]).failed
    pixels, _, _ = read_tile(tmp_path / "out", tile=tile)
    got = pixels[BANDS.index("B11")].astype(np.int64)
    jj, ii = np.mgrid[0:32, 0:32]
    jj, ii = jj + 20 + dy, ii + 20 + dx  # the tile's pixels in the scene's 10 m pixel grid
    assert np.abs(got - (2000 + 2 * (10 * ii + 5) + 3 * (10 * jj + 5))).max() <= 1
    shifted = 2000 + 2 * (10 * (ii + 1) + 5) + 3 * (10 * jj + 5)
    assert np.abs(got - shifted).min() >= 19  # a one-pixel (10 m) shift is 20 DN off everywhere
    # the 10 m bands are the scene's own pixels
    assert np.array_equal(pixels[BANDS.index("B04")], scene.dn("B04")[jj[:, 0]][:, ii[0]] - 1000)


def _one_pixel(bands20: np.ndarray, clear20: np.ndarray, bilinear: bool) -> np.ndarray:
    """The compiled composite of one 10 m pixel of one scene, whose 10 m bands are 1000, over a 4 x 4
    20 m neighbourhood: the first 10 m pixel of a tile on the 20 m grid (one 20 m pixel of margin)."""
    from landcover.mosaic.kernel import composite_strip

    ten = np.full((1, 4, 1, 1), 1000, np.uint16)
    twenty = np.concatenate([bands20[None].astype(np.uint16), np.full((1, 1, 4, 4), 4, np.uint16)], axis=1)
    out, land = np.zeros((11, 1, 1), np.uint16), np.zeros((1, 2), np.int64)
    composite_strip(ten, twenty, clear20[None], np.zeros((1, 10), np.float32), np.zeros(1, np.int64), 0.75, 0.75,
                    bilinear, 0.5, out, land)
    return out[:, 0, 0]


def test_bilinear_never_reaches_across_a_masked_20m_pixel() -> None:
    """By hand: the pixel lies in 20 m pixel (1, 1), 1/4 of the way from (0, 0): weights 1/16, 3/16,
    3/16, 9/16. With (0, 1) masked, the rest renormalise: (2000 + 3 * 1000 + 9 * 1000) / 13 = 1076.9."""
    b05 = BANDS.index("B05")
    bands = np.full((6, 4, 4), 1000)
    bands[0, 0, 0], bands[0, 0, 1] = 2000, 8000
    clear = np.ones((4, 4), bool)
    clear[0, 1] = False
    out = _one_pixel(bands, clear, bilinear=True)
    assert out[b05] == 1077 and out[BANDS.index("B02")] == 1000 and out[-1] == 1
    assert out[BANDS.index("B06")] == 1000  # uniform clear ground keeps its value exactly
    leaked = _one_pixel(bands, np.ones_like(clear), bilinear=True)
    assert leaked[b05] == (2000 + 3 * 8000 + 3 * 1000 + 9 * 1000) // 16  # 2375: what leaked before
    assert _one_pixel(bands, clear, bilinear=False)[b05] == 1000  # nearest: the pixel's own 20 m pixel
    clear[1, 1] = False  # its own 20 m pixel masked: no observation
    assert not _one_pixel(bands, clear, bilinear=True).any()


def test_the_buffer_grows_clouds_and_shadows_by_a_disk() -> None:
    from landcover.mosaic.resample import clear_20m

    scl = np.full((1, 7, 7), 4, np.uint8)
    scl[0, 3, 3], scl[0, 0, 6] = 9, 6  # a cloud, and water (kept, never grown)
    bands = np.ones((1, 6, 7, 7), np.uint16)
    yy, xx = np.mgrid[0:7, 0:7]
    for radius in (0, 1, 2):
        got = clear_20m(bands, scl, MASKED, radius)[0]
        assert np.array_equal(got, (yy - 3) ** 2 + (xx - 3) ** 2 > radius * radius), radius
    bands[0, 2, 0, 0] = 0  # a 20 m band at nodata: that pixel is not clear either
    assert not clear_20m(bands, scl, MASKED, 0)[0, 0, 0]


def test_a_mis_tagged_scene_is_caught(scenes, tmp_path) -> None:
    """Earth Search's older collection says the offset is not applied, but this scene's DN already
    are reflectance x 10000 (earth-search#71): applied again, its clear land is mostly <= 0."""
    wrong = dataclasses.replace(scenes[0], offset=0, extra={"earthsearch:boa_offset_applied": False})
    wrong.truth = np.clip(scenes[0].truth * 0.1, 1, None)  # dark vegetation: 0.005-0.09 reflectance
    others = scenes[1:]
    source = write_catalog([wrong, *others], tmp_path / "src", "earth-search-old")
    assert not mosaic(source, tmp_path / "drop").failed
    pixels, _, manifest = read_tile(tmp_path / "drop")
    excluded = manifest["seasons"]["summer"]["excluded"]
    assert [e["id"] for e in excluded] == [wrong.id] and "implausible" in excluded[0]["reason"]
    assert np.array_equal(pixels, expected(others)[0])

    assert not mosaic(source, tmp_path / "fix", params(**{"mosaic.plausibility.on_fail": "fix"})).failed
    pixels, _, manifest = read_tile(tmp_path / "fix")
    fixed = {s["id"]: s for s in manifest["seasons"]["summer"]["scenes"]}[wrong.id]
    assert fixed["offset"] == [0.0] and fixed["offset_source"].startswith("plausibility")
    assert np.array_equal(pixels, expected([wrong, *others])[0])


def test_one_overpass_seen_by_two_granules_counts_once(scenes, tmp_path) -> None:
    twin = dataclasses.replace(scenes[0], id=scenes[0].id.replace(f"T{scenes[0].mgrs_tile}", "T32TNR"))
    source = write_catalog([scenes[0], twin], tmp_path / "src")
    assert not mosaic(source, tmp_path / "out").failed
    _, count, manifest = read_tile(tmp_path / "out")
    assert len(manifest["seasons"]["summer"]["scenes"]) == 2
    assert count.max() == 1


def test_scenes_without_offset_metadata_are_rejected_by_name(scenes, tmp_path) -> None:
    bare = [dataclasses.replace(s, baseline=None) for s in scenes[:2]]
    source = write_catalog(bare, tmp_path / "src", "planetary-computer")
    assert not mosaic(source, tmp_path / "out").failed
    _, count, manifest = read_tile(tmp_path / "out")
    assert (count == 0).all()
    reasons = [e["reason"] for e in manifest["seasons"]["summer"]["excluded"]]
    assert len(reasons) == 2 and all("no BOA offset" in r for r in reasons)
    p = params(**{"mosaic.offset_when_unknown": -1000})
    assert not mosaic(source, tmp_path / "assumed", p).failed
    assert read_tile(tmp_path / "assumed")[1].max() > 0


def test_rerun_skips_finished_tiles_and_an_unreadable_scene_is_named(scenes, tmp_path) -> None:
    """Two tiles; one scene's red band is truncated and covers only the first tile. The first
    fails naming the scene, the second completes; a rerun skips the second."""
    broken = dataclasses.replace(scenes[1])
    broken.truth = scenes[1].truth.copy()
    broken.truth[:, :, SIZE // 2:] = 0  # nodata over the right half: the second tile never reads it
    tiles = [TileGrid("c1", "r00c00", EPSG, WEST, NORTH, 32, 32),
             TileGrid("c1", "r00c01", EPSG, WEST + 320, NORTH, 32, 32)]
    source = write_catalog([scenes[0], broken, scenes[2]], tmp_path / "src")
    # its footprint must not reach the second tile, and its red band is cut short
    item_json = next((tmp_path / "src").rglob(f"{broken.id}.json"))
    item = json.loads(item_json.read_text())
    w, s, e, n = item["bbox"]
    item["bbox"] = [w, s, w + (e - w) * 0.45, n]
    item["geometry"]["coordinates"] = [[[w, s], [w + (e - w) * 0.45, s], [w + (e - w) * 0.45, n], [w, n], [w, s]]]
    item_json.write_text(json.dumps(item))
    red = next((tmp_path / "src").rglob(f"{broken.id}/B04.tif"))
    red.write_bytes(red.read_bytes()[:400])
    p = params(**{"mosaic.retries": 1, "mosaic.retry_delay_s": 0})
    result = mosaic(source, tmp_path / "out", p, tiles)
    assert result.written == ["c1/r00c01"]
    assert list(result.failed) == ["c1/r00c00"] and broken.id in result.failed["c1/r00c00"]
    assert "after 2 tries" in result.failed["c1/r00c00"]
    assert not (tmp_path / "out/tiles/c1/r00c00/manifest.json").exists()

    written = (tmp_path / "out/tiles/c1/r00c01/summer.tif").stat().st_mtime_ns
    again = mosaic(source, tmp_path / "out", p, tiles[1:])
    assert again.skipped == ["c1/r00c01"] and not again.written
    assert (tmp_path / "out/tiles/c1/r00c01/summer.tif").stat().st_mtime_ns == written

    skip = params(**{"mosaic.retries": 0, "mosaic.skip_unreadable_scenes": True})
    done = mosaic(source, tmp_path / "out", skip, tiles)
    assert done.written == ["c1/r00c00", "c1/r00c01"]  # a new request (params) redoes both
    manifest = read_tile(tmp_path / "out", tile=tiles[0])[2]
    assert [e["id"] for e in manifest["seasons"]["summer"]["excluded"]] == [broken.id]


def test_season_files_not_written_by_mosaic_are_never_replaced(catalog, tiny_dataset, tmp_path) -> None:
    import shutil

    shutil.copytree(tiny_dataset, tmp_path / "data")
    city = sorted((tmp_path / "data/tiles").iterdir())[0]
    tile_dir = sorted(city.iterdir())[0]
    before = (tile_dir / "summer.tif").read_bytes()
    tile = TileGrid(city.name, tile_dir.name, EPSG, WEST, NORTH, SIZE, SIZE)
    result = mosaic(catalog, tmp_path / "data", tiles=[tile])
    assert "did not write" in result.failed[tile.key]
    assert (tile_dir / "summer.tif").read_bytes() == before


def test_winter_starts_in_december_of_the_year_before() -> None:
    start, end = season_window(2023, (12, 2))
    assert start == dt.datetime(2022, 12, 1, tzinfo=dt.UTC) and end == dt.datetime(2023, 3, 1, tzinfo=dt.UTC)
    assert season_window(2024, (9, 12))[1] == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


# --------------------------------------------------------------------------- a STAC API over HTTP


class _StacApi:
    """A minimal STAC API on localhost: landing page, POST /search (bbox, datetime, eo:cloud_cover)
    and the scenes' COGs with HTTP range requests, as GDAL's /vsicurl/ reads them."""

    def __init__(self, catalog: Path) -> None:
        import http.server
        import threading

        import pystac

        self.root = catalog.parent
        self.items = [i.to_dict() for i in pystac.read_file(str(catalog)).get_items(recursive=True)]
        self.searches: list[dict] = []
        self.ranges: list[str] = []  # file requests served
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, body: bytes, status: int = 200, kind: str = "application/json", extra=None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                if self.path.startswith("/files/"):
                    data = (api.root / self.path.removeprefix("/files/")).read_bytes()
                    rng = self.headers.get("Range")
                    api.ranges.append(f"{self.path} {rng}")
                    if rng:
                        first, _, last = rng.removeprefix("bytes=").partition("-")
                        start, end = int(first), min(int(last or len(data) - 1), len(data) - 1)
                        return self._send(data[start:end + 1], 206, "image/tiff", {
                            "Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"})
                    return self._send(data, 200, "image/tiff", {"Accept-Ranges": "bytes"})
                base = f"http://127.0.0.1:{api.port}"
                self._send(json.dumps({
                    "type": "Catalog", "id": "test-api", "description": "test", "stac_version": "1.0.0",
                    "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                   "https://api.stacspec.org/v1.0.0/item-search",
                                   "https://api.stacspec.org/v1.0.0/item-search#query"],
                    "links": [{"rel": "self", "href": base + "/"}, {"rel": "root", "href": base + "/"},
                              {"rel": "search", "href": base + "/search", "method": "POST",
                               "type": "application/geo+json"}]}).encode())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.searches.append(body)
                start, end = (dt.datetime.fromisoformat(x.replace("Z", "+00:00")) for x in body["datetime"].split("/"))
                w, s, e, n = body["bbox"]
                limit = body["query"]["eo:cloud_cover"]["lte"]
                found = []
                for item in api.items:
                    bw, bs, be, bn = item["bbox"]
                    when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
                    if bw < e and w < be and bs < n and s < bn and start <= when <= end and \
                            item["properties"]["eo:cloud_cover"] <= limit:
                        found.append(json.loads(json.dumps(item).replace(
                            str(api.root), f"http://127.0.0.1:{api.port}/files")))
                self._send(json.dumps({"type": "FeatureCollection", "features": found, "links": []}).encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def test_a_stac_api_search_shares_the_loading_path(catalog, tmp_path) -> None:
    """pystac-client searches the API (collection, bbox, season window, cloud cover), GDAL reads the
    COGs over HTTP: the tile equals the one made from the static catalog, byte for byte."""
    api = _StacApi(catalog)
    try:
        p = params(**{"mosaic.preset": "earth-search"})
        assert not mosaic(catalog, tmp_path / "static").failed
        result = mosaic_tiles(p, tmp_path / "api", [TILE], [CITY], open_source(api.url, p.mosaic), 2023)
        assert result.written == [TILE.key], result.failed
    finally:
        api.server.shutdown()
    assert any("/B11.tif bytes=" in r for r in api.ranges)  # the scenes were read over HTTP
    summer = [s for s in api.searches if s["datetime"].startswith("2023-06-01")]
    assert summer and summer[0]["collections"] == ["sentinel-2-c1-l2a"]
    assert summer[0]["query"] == {"eo:cloud_cover": {"lte": 70.0}}
    for name in ("summer.tif", "clear_count.tif"):
        assert (tmp_path / "api/tiles/c1/r00c00" / name).read_bytes() == \
            (tmp_path / "static/tiles/c1/r00c00" / name).read_bytes()
    manifest = json.loads((tmp_path / "api/tiles/c1/r00c00/manifest.json").read_text())
    assert manifest["request"]["source"] == {"kind": "stac-api", "url": api.url, "collection": "sentinel-2-c1-l2a"}


def test_mosaic_on_a_dask_cluster_equals_the_local_run(catalog, tmp_path) -> None:
    from distributed import LocalCluster

    assert not mosaic(catalog, tmp_path / "local").failed
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        p = params(**{"mosaic.dask_address": cluster.scheduler_address})
        assert not mosaic(catalog, tmp_path / "cluster", p).failed
    for name in ("summer.tif", "clear_count.tif"):
        assert (tmp_path / "cluster/tiles/c1/r00c00" / name).read_bytes() == \
            (tmp_path / "local/tiles/c1/r00c00" / name).read_bytes()


@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_the_quantile_is_numpys_linear_quantile_of_the_clear_days(q) -> None:
    """Seven scenes with random clear days (nearest: each 10 m pixel's 20 m values are its own 20 m
    pixel's): per pixel and band, numpy's nanquantile of the clear values, rounded half to even."""
    from landcover.mosaic.kernel import composite_strip

    rng = np.random.default_rng(1)
    t, rows = 7, 8
    ten = rng.integers(1, 9000, (t, 4, rows, rows)).astype(np.uint16)
    twenty = rng.integers(1, 9000, (t, 7, rows // 2 + 2, rows // 2 + 2)).astype(np.uint16)
    twenty[:, 6] = 4
    clear = rng.random((t, rows // 2 + 2, rows // 2 + 2)) > 0.4
    clear[:, 1, 1] = False  # the top-left 2 x 2 pixels: never clear
    offsets = rng.choice([0.0, -1000.0], (t, 10)).astype(np.float32)
    out, land = np.zeros((11, rows, rows), np.uint16), np.zeros((t, 2), np.int64)
    composite_strip(ten, twenty, clear, offsets, np.arange(t), 0.75, 0.75, False, q, out, land)
    own = 1 + np.arange(rows) // 2  # the 20 m pixel of each 10 m row and column
    values = np.empty((t, 10, rows, rows))
    values[:, [0, 1, 2, 6]] = ten
    values[:, [3, 4, 5, 7, 8, 9]] = twenty[:, :6][:, :, own][:, :, :, own]
    values += offsets[:, :, None, None]
    values[~np.broadcast_to(clear[:, own][:, :, own][:, None], values.shape)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanquantile(values, q, axis=0)
    want = np.where(np.isnan(want), 0, np.clip(np.round(want), 1, 65535))
    assert np.array_equal(out[:10], want) and (out[:10, :2, :2] == 0).all()
    assert np.array_equal(out[10], (~np.isnan(values[:, 0])).sum(0))


def test_an_interrupted_tile_is_redone_and_cli_errors_name_the_problem(catalog, tmp_path, capsys) -> None:
    from landcover.cli import main as cli_main

    assert not mosaic(catalog, tmp_path / "out").failed
    folder = tmp_path / "out/tiles/c1/r00c00"
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "status": "writing"}))  # killed while writing
    (folder / "winter.tif").unlink()
    (folder / ".summer.tif.abc.tmp.tif").write_bytes(b"half")  # a temporary left by the kill
    result = mosaic(catalog, tmp_path / "out")
    assert result.written == ["c1/r00c00"] and (folder / "winter.tif").is_file()
    assert json.loads((folder / "manifest.json").read_text())["status"] == "complete"
    assert not list(folder.glob(".*"))

    base = ["--params", str(REPO / "params.yaml"), "mosaic", "--out", str(tmp_path / "cli")]
    cities = tmp_path / "cities.csv"
    cities.write_text("city_id,name,country,lat,lon,climate_zone\nc1,Test,IT,45.13,9.0,continental\n")
    for args, message in (
        ([*base, "--cities", str(cities), "--year", "2023", "--source", str(tmp_path / "nowhere")],
         "nowhere: neither a preset"),
        ([*base, "--cities", str(cities), "--source", str(catalog)], "--year is needed"),
        ([*base, "--source", str(catalog), "--year", "2023"], "give either --cities FILE or --aoi FILE"),
        ([*base, "--aoi", str(cities), "--city-id", "x", "--year", "2023"], "cities.csv: AOI has no geometry"),
        ([*base, "--cities", str(cities), "--year", "2023", "--source", "https://example.org/stac"],
         "no preset in mosaic.presets has this URL"),
    ):
        assert cli_main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
