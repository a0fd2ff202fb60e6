"""`landcover view`: the tile and pixel endpoints against the rasters read with rasterio (values and
colours), maps of two UTM zones together, the legend from the data contract's tables, bad input by
name; and a real headless Chromium (Debian's, driven by Playwright) that opens the page offline, waits
for the tiles, checks the map is drawn in the legend's colours and that a click shows the class; the
same browser opens the Data Docs from disk with the internet blocked and finds them styled and
their validation results listed."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from conftest import REPO
from landcover.classes import colormap
from landcover.config import load_params
from landcover.errors import LandcoverError
from landcover.fuel import fuel_colormap
from landcover.maps.cog import translate_to_cog

# two tiles, one each side of the 6 deg E zone border, 45.2 deg N: left half Water (5), right half Grassland (6)
TILES = {"c_31N/r00c00": (32631, 735_000.0, 5_010_000.0), "c_32N/r00c00": (32632, 265_000.0, 5_010_000.0)}
SIZE = 200


def _write(path: Path, data: np.ndarray, epsg: int, west: float, north: float, cog: bool,
           cmap: dict | None = None) -> None:
    raw = path.with_suffix(".raw.tif")
    with rasterio.open(raw, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="uint8",
                       crs=f"EPSG:{epsg}", transform=from_origin(west, north, 10, 10), nodata=0) as dst:
        dst.write(data, 1)
        if cmap:
            dst.write_colormap(1, cmap)
    if cog:
        translate_to_cog(raw, path, "mode")
        raw.unlink()
    else:
        raw.replace(path)


def make_maps(root: Path, cog: bool = True, offset: int = 0) -> Path:
    """A batch-inference-like folder: per tile land cover, fuel (the atlantic crosswalk's NB8 and GR2)
    and confidence; `offset` shifts the classes, for a second version to compare."""
    for key, (epsg, west, north) in TILES.items():
        folder = root / key
        folder.mkdir(parents=True)
        lc = np.full((SIZE, SIZE), 5 + offset, np.uint8)
        lc[:, SIZE // 2:] = 6 + offset
        lc[:5, :5] = 0  # a nodata corner
        fuel = np.where(lc == 5, 98, np.where(lc == 6, 102, 0)).astype(np.uint8)
        conf = np.where(lc > 0, 70, 0).astype(np.uint8)
        _write(folder / "landcover.tif", lc, epsg, west, north, cog, colormap())
        _write(folder / "fuel.tif", fuel, epsg, west, north, cog, fuel_colormap())
        _write(folder / "confidence.tif", conf, epsg, west, north, cog)
        (folder / "provenance.json").write_text(json.dumps({"model": {"uri": "models:/landcover/7",
                                                                      "name": "landcover", "version": "7"}}))
    return root


@pytest.fixture(scope="module")
def maps(tmp_path_factory) -> Path:
    return make_maps(tmp_path_factory.mktemp("view") / "maps")


def _client(*folders: Path):
    from fastapi.testclient import TestClient

    from landcover.viewer.app import create_app
    from landcover.viewer.layers import MapSet

    return TestClient(create_app([MapSet.discover(f) for f in folders]))


def _centre(key: str, row: int, col: int) -> tuple[float, float]:
    epsg, west, north = TILES[key]
    return Transformer.from_crs(epsg, 4326, always_xy=True).transform(west + (col + 0.5) * 10,
                                                                       north - (row + 0.5) * 10)


def _tile_of(lon: float, lat: float, z: int):
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    t = tms.tile(lon, lat, z)
    b = tms.xy_bounds(t)
    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    return t, int((x - b.left) / (b.right - b.left) * 256), int((b.top - y) / (b.top - b.bottom) * 256)


def _png(data: bytes) -> np.ndarray:
    from rasterio.io import MemoryFile

    with MemoryFile(data) as mem, mem.open() as src:
        return src.read()  # (4, 256, 256) RGBA


def test_tiles_and_pixel_queries_match_the_rasters(maps) -> None:
    client = _client(maps)
    described = client.get("/api/layers").json()
    (layers,) = [s["layers"] for s in described["sets"]]
    lc = next(layer for layer in layers if layer["key"] == "landcover")
    assert {(i["code"], i["name"]) for i in lc["legend"]} == {(5, "Water"), (6, "Grassland")}
    assert lc["legend"][0]["colour"] == "#1f78b4" and lc["files"] == 2
    assert described["sets"][0]["model"]["version"] == "7" and not described["sets"][0]["warnings"]

    # both zones, each reprojected on the fly; the 32N tile's pixels east of where the 31N tile ends (the
    # zones' grids overlap by design, and where they do the first map with data is shown)
    for key, cols in (("c_31N/r00c00", (40, 160)), ("c_32N/r00c00", (95, 160))):
        for row, col in ((100, cols[0]), (100, cols[1])):
            lon, lat = _centre(key, row, col)
            with rasterio.open(maps / key / "landcover.tif") as src:
                want = int(src.read(1)[row, col])
            with rasterio.open(maps / key / "fuel.tif") as src:
                want_fuel = int(src.read(1)[row, col])
            answer = client.get("/api/point", params={"lon": lon, "lat": lat}).json()
            assert answer["landcover"]["value"] == want and answer["fuel"]["value"] == want_fuel
            assert answer["confidence"]["value"] == 70 and answer["model"]["version"] == "7"
            tile, px, py = _tile_of(lon, lat, 15)
            png = client.get(f"/tiles/0/landcover/{tile.z}/{tile.x}/{tile.y}.png")
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
            rgba = _png(png.content)
            assert tuple(rgba[:, py, px]) == colormap()[want]  # the class's colour, opaque
            fuel_png = _png(client.get(f"/tiles/0/fuel/{tile.z}/{tile.x}/{tile.y}.png").content)
            assert tuple(fuel_png[:, py, px]) == fuel_colormap()[want_fuel]
    # outside every map: no tile, no value
    outside = client.get("/tiles/0/landcover/15/0/0.png")
    assert outside.status_code == 200 and not _png(outside.content)[3].any()  # fully transparent
    # a continent's zoom: too coarse to read these maps, blank (the page outlines them there)
    lon, lat = _centre("c_31N/r00c00", 100, 40)
    tile, _, _ = _tile_of(lon, lat, 4)
    assert not _png(client.get(f"/tiles/0/landcover/4/{tile.x}/{tile.y}.png").content)[3].any()
    assert described["sets"][0]["footprints"][0]["name"] == "c_31N/r00c00"
    assert client.get("/api/point", params={"lon": 0.0, "lat": 0.0}).json()["landcover"] is None
    assert client.get("/tiles/0/nothing/15/0/0.png").status_code == 404


def test_bad_input_by_name(maps, tmp_path) -> None:
    from landcover.viewer.layers import MapSet
    from landcover.viewer.stage import open_viewer

    (tmp_path / "empty").mkdir()
    with pytest.raises(LandcoverError, match="empty: no maps to show"):
        MapSet.discover(tmp_path / "empty")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LandcoverError, match=f"port {port} on 127.0.0.1 is in use"):
            open_viewer(load_params(REPO / "params.yaml"), maps, port=port)
    plain = make_maps(tmp_path / "plain", cog=False)  # no overviews: served, with a warning
    (warning,) = MapSet.discover(plain).warnings
    assert "without overviews" in warning and "small zooms will be slow" in warning


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium():
    """Debian's chromium through Playwright (no browser download), offline: every request that leaves
    127.0.0.1 or the disk is aborted and recorded."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium (Debian's package) is missing; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    return sync_playwright, path


ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _offline(page, blocked: list[str]) -> None:
    def route(r):
        url = r.request.url
        if url.startswith(("http://127.0.0.1", "file://", "data:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    page.route("**/*", route)


@pytest.mark.slow
def test_the_page_in_a_real_browser(maps, tmp_path) -> None:
    from landcover.viewer.stage import open_viewer

    sync_playwright, chromium = _chromium()
    second = make_maps(tmp_path / "v2", offset=1)  # a second version: agriculture and broadleaved
    viewer = open_viewer(load_params(REPO / "params.yaml"), maps, compare=second, port=_free_port())
    server = viewer.server()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    blocked: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 700})
            _offline(page, blocked)
            page.goto(viewer.url)
            page.wait_for_function("window.viewer && window.viewer.ready && window.viewer.loaded >= 2 "
                                   "&& window.viewer.pending === 0", timeout=60_000)
            page.wait_for_timeout(800)  # Leaflet fades tiles in
            shot = page.screenshot()
            artifact = Path(os.environ.get("LANDCOVER_TEST_ARTIFACTS", tmp_path)) / "viewer.png"
            artifact.parent.mkdir(parents=True, exist_ok=True)
            artifact.write_bytes(shot)
            legend = page.eval_on_selector_all(".legend-item", "items => items.map(i => i.textContent.trim())")
            assert legend == ["5  Water", "6  Grassland", "7  Agricultural"]  # both versions' classes
            # the left map is drawn in the legend's colours: water and grassland pixels in the screenshot
            rgb = _png(shot)[:3].transpose(1, 2, 0).reshape(-1, 3)
            colours = {tuple(int(v) for v in c) for c in np.unique(rgb, axis=0)}
            water, grass = colormap()[5][:3], colormap()[6][:3]
            assert _near(colours, water) and _near(colours, grass), "the map's classes are not on screen"
            # a click on the left map at a water pixel shows Water, its fuel model and the model version
            lon, lat = _centre("c_31N/r00c00", 100, 40)
            point = page.evaluate("([lat, lon]) => { const p = window.viewer.maps[0].latLngToContainerPoint("
                                  "[lat, lon]); return [p.x, p.y]; }", [lat, lon])
            page.locator("#map0").click(position={"x": point[0], "y": point[1]})
            page.wait_for_function("window.viewer.lastQuery !== undefined", timeout=10_000)
            query = page.evaluate("window.viewer.lastQuery")
            assert query["landcover"]["name"] == "Water" and query["fuel"]["value"] == 98
            assert page.locator(".leaflet-popup-content").inner_text().startswith("Land cover\t5 Water")
            # the compared version beside it, synchronised
            views = page.evaluate("window.viewer.maps.map(m => [m.getCenter().lat, m.getCenter().lng, m.getZoom()])")
            assert np.allclose(views[0], views[1])
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    assert not blocked, f"the page asked the internet for {blocked}"


def _near(colours: set, target: tuple, tolerance: int = 40) -> bool:
    """A colour on screen close to `target`: the map is drawn at 85 % opacity over a light background."""
    return any(sum(abs(a - b) for a, b in zip(c, target, strict=True)) <= tolerance for c in colours)


@pytest.mark.slow
def test_the_data_docs_work_offline(tiny_dataset, tmp_path) -> None:
    from landcover.validation.stage import run_validation

    sync_playwright, chromium = _chromium()
    result = run_validation(load_params(REPO / "params.yaml"), tiny_dataset, tmp_path / "validation")
    index = result.paths["data_docs"]
    assert "https://unpkg.com" not in index.read_text() and "cdn.jsdelivr" not in index.read_text()
    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page()
        _offline(page, blocked)
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        # Bootstrap styled the page (its reboot sets the body's margin to 0 and its font stack)
        assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
        assert page.evaluate("typeof jQuery === 'function' && typeof jQuery.fn.bootstrapTable === 'function'")
        rows = page.locator("table tbody tr")
        assert rows.count() >= 1 and "landcover" in rows.first.inner_text().lower()
        page.screenshot(path=str(tmp_path / "data_docs.png"))
        browser.close()
    external = [u for u in blocked if "greatexpectations.io" not in u]
    assert not external, f"the Data Docs asked the internet for {external}"


def test_png_helper_reads_rgba() -> None:
    from rio_tiler.models import ImageData

    data = ImageData(np.ma.MaskedArray(np.full((1, 256, 256), 5, np.uint8))).render(img_format="PNG",
                                                                                 colormap=colormap())
    assert tuple(_png(data)[:, 0, 0]) == colormap()[5]
    assert io.BytesIO(data).read(4) == b"\x89PNG"


def test_the_inference_artifact_and_the_model_card_name_the_viewer(tmp_path) -> None:
    from landcover.promotion.gates import Decision
    from landcover.promotion.model_card import build_model_card
    from landcover.reporting import inference_markdown

    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "run_summary.json").write_text(json.dumps(
        {"tiles_written": 1, "tiles_skipped": 0, "tiles_failed": 0, "km2": 1.0, "seconds": 1, "model": "m"}))
    assert f"landcover view {tmp_path / 'batch'}" in inference_markdown(tmp_path / "batch" / "run_summary.json")
    card = build_model_card("landcover", "3", {"miou": 0.5}, Decision(True, "champion"), "champion",
                            load_params(REPO / "params.yaml").promote)
    assert "landcover view outputs/batch" in card
