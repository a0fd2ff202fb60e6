"""Composites that real scenes would test: clouds and shadows on clear ground in every catalogue
style at once, every SCL class, the mask buffer, and what is refused. Default configuration
(bilinear 20 m bands) unless a test names another; expected values from `mosaic_reference`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pystac
import pytest

from landcover.bands import BANDS
from landcover.config import load_params
from landcover.errors import LandcoverError
from landcover.mosaic.safe import safe_item
from landcover.synth.l2a import FakeScene, fabricate, stac_item, write_catalog, write_safe
from mosaic_reference import (
    EPSG,
    MASKED,
    NORTH,
    SIZE,
    TILE,
    WEST,
    mosaic,
    params,
    read_tile,
    reference,
)

HALF = SIZE // 2
GROUND = np.array([1000 + 60 * b for b in range(len(BANDS))], np.float64)  # clear ground, B02 ... B12
POISON = 8000.0  # what a cloud, a shadow or a saturated pixel reads; it must never reach a clear pixel
MASKED_CYCLE = (9, 8, 10, 3, 1)


def _scene(day: int, scl: np.ndarray, values: np.ndarray, offset: int, baseline: str) -> FakeScene:
    """A summer scene whose 20 m pixels have the given SCL and per-band reflectance (x 10000)."""
    truth = np.repeat(np.repeat(values, 2, axis=1), 2, axis=2)
    when = dt.datetime(2023, 6, day, 10, 30, tzinfo=dt.UTC)
    return FakeScene(f"S2B_T32TMR_{when:%Y%m%dT%H%M%S}_L2A", when, EPSG, WEST, NORTH, truth, scl.astype(np.uint8),
                     offset=offset, baseline=baseline)


def _mixed_catalog(scenes: list[FakeScene], styles: list[str], folder: Path) -> Path:
    """One static catalogue holding scenes in different catalogues' styles, SAFE products among them
    (as a user merging an Earth Search search with a Copernicus download would have it)."""
    catalog = pystac.Catalog("mixed", "scenes in every offset style")
    for scene, style in zip(scenes, styles, strict=True):
        item = safe_item(write_safe(scene, folder / "safe")) if style == "safe" else stac_item(
            scene, folder / "data", style)
        catalog.add_item(item)
    catalog.normalize_hrefs(str(folder / "catalog"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return folder / "catalog" / "catalog.json"


def test_clear_ground_at_cloud_edges_keeps_its_value_in_every_catalogue_style(tmp_path) -> None:
    """The held-out check: six scenes, each clear only in its own overlapping stripe of columns and
    masked elsewhere by blocks of cloud, rim, cirrus, shadow and saturated pixels (8000) or the swath's
    no-data edge, on uniform ground; one scene per offset style (Earth Search's flag both ways,
    Collection 1's raster:bands, Planetary Computer's baseline, the Copernicus Data Space's constant
    raster:offset, a SAFE product's BOA_ADD_OFFSET), before and after baseline 04.00. Each stripe is
    seen by one or two scenes, so one wrong offset or one leaked cloud shows: every pixel whose 20 m
    pixel is clear in any scene equals the ground exactly in all ten bands; the rest is nodata."""
    styles = ["earth-search-old", "earth-search-old", "earth-search-c1", "planetary-computer", "cdse", "safe"]
    stored = [(-1000, "05.09"), (0, "05.09"), (-1000, "05.10"), (0, "02.14"), (0, "03.01"), (-1000, "04.00")]
    rows, cols = np.mgrid[0:HALF, 0:HALF]
    scenes, clear_any = [], np.zeros((HALF, HALF), bool)
    for k, (offset, baseline) in enumerate(stored):
        stripe = (cols >= 5 * k) & (cols < 5 * k + 8)
        blocks = np.array(MASKED_CYCLE)[((rows // 3) + (cols // 3) + k) % len(MASKED_CYCLE)]
        scl = np.where(stripe, 4, blocks)
        scl[stripe & (rows % 7 == 3)] = (2, 5, 6, 7, 11, 4)[k]  # kept classes on the same ground
        scl[:2] = 9  # never clear: nodata
        values = np.where((scl == 4) | np.isin(scl, (2, 5, 6, 7, 11)), GROUND[:, None, None], POISON)
        if k == 3:  # the swath edge: no data in any band
            edge = rows + cols > 1.7 * HALF
            scl[edge], values[:, edge] = 0, 0
        scenes.append(_scene(3 + 5 * k, scl, values, offset, baseline))
        clear_any |= ~np.isin(scl, MASKED)
    result = mosaic(_mixed_catalog(scenes, styles, tmp_path), tmp_path / "out")
    assert not result.failed, result.failed
    pixels, count, manifest = read_tile(tmp_path / "out")
    used = {s["id"]: s for s in manifest["seasons"]["summer"]["scenes"]}
    assert len(used) == len(scenes) and not manifest["seasons"]["summer"]["excluded"]
    clear10 = np.repeat(np.repeat(clear_any, 2, 0), 2, 1)
    assert np.array_equal(pixels, np.where(clear10, GROUND[:, None, None], 0).astype(np.uint16))
    assert (count[clear10] >= 1).all() and (count[~clear10] == 0).all()
    # the edges are where a leak would show: clear 10 m pixels with a masked 20 m neighbour in their scene
    edges = sum(int((np.repeat(np.repeat(~np.isin(s.scl, MASKED), 2, 0), 2, 1) & _next_to_masked(s.scl)).sum())
                for s in scenes)
    assert edges > 500
    offsets = sorted((u["offset_source"].split(",")[0], u["offset"][0]) for u in used.values())
    assert offsets == sorted([("earthsearch:boa_offset_applied=false", -1000.0),
                              ("earthsearch:boa_offset_applied=true", 0.0), ("raster:bands", -1000.0),
                              ("processing baseline 02.14", 0.0), ("processing baseline 03.01", 0.0),
                              ("raster:bands", -1000.0)])


def _next_to_masked(scl: np.ndarray) -> np.ndarray:
    """10 m pixels one of whose four bilinear 20 m neighbours is masked."""
    masked = np.pad(np.isin(scl, MASKED), 1, constant_values=True)
    out = np.zeros((2 * scl.shape[0], 2 * scl.shape[1]), bool)
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            r0, c0 = (j - 1) // 2, (i - 1) // 2  # the upper-left neighbour's 20 m index
            out[j, i] = masked[r0 + 1:r0 + 3, c0 + 1:c0 + 3].any()
    return out


@pytest.mark.parametrize("resampling", ["bilinear", "nearest"])
def test_every_scl_class_is_masked_or_kept_as_documented(resampling, tmp_path) -> None:
    """A scene with a block of each SCL class 0 ... 11 on vegetated ground, each at the reflectance it
    implies (masked classes at 8000, no data at 0, kept classes at values of their own): masked ones
    never reach the composite, kept ones (2, 4, 5, 6, 7, and 11 unless mask_snow) do."""
    scl = np.full((HALF, HALF), 4, np.uint8)
    values = np.repeat(GROUND[:, None, None], HALF, 1).repeat(HALF, 2).astype(np.float64)
    blocks = {}
    for code in range(12):
        r, c = 2 + 10 * (code // 4), 1 + 8 * (code % 4)
        scl[r:r + 6, c:c + 6] = code
        level = 0.0 if code == 0 else POISON if code in MASKED else 2000 + 150 * code
        values[:, r:r + 6, c:c + 6] = 0.0 if code == 0 else level + 10 * np.arange(len(BANDS))[:, None, None]
        blocks[code] = (r, c)
    scene = _scene(12, scl, values, -1000, "05.09")
    source = write_catalog([scene], tmp_path / "src")
    for mask_snow in (False, True):
        out = tmp_path / f"out-{mask_snow}"
        p = params(**{"mosaic.resampling_20m": resampling, "mosaic.mask_snow": mask_snow})
        assert not mosaic(source, out, p).failed
        pixels, _, _ = read_tile(out)
        masked = (*MASKED, 11) if mask_snow else MASKED
        want, _ = reference([scene], bilinear=resampling == "bilinear", masked=masked)
        assert np.array_equal(pixels, want)
        assert pixels.max() < POISON  # nothing masked leaks, anywhere
        for code, (r, c) in blocks.items():
            inner = pixels[:, 2 * r + 2:2 * r + 10, 2 * c + 2:2 * c + 10]  # away from the block's edge
            if code in masked:
                assert (pixels[:, 2 * r:2 * r + 12, 2 * c:2 * c + 12] == 0).all(), code
            else:
                level = 2000 + 150 * code + 10 * np.arange(len(BANDS))
                assert np.array_equal(inner, np.broadcast_to(level[:, None, None], inner.shape)), code


@pytest.mark.parametrize("buffer_m", [20, 40])
def test_the_mask_buffer_drops_clear_pixels_near_clouds_and_shadows(buffer_m, tmp_path) -> None:
    """Fabricated scenes (every SCL class, varied ground): with `mosaic.mask_buffer_m` the composite
    equals the reference whose 20 m pixels within the buffer of a cloud or shadow are masked."""
    scenes = fabricate(4, SIZE, seed=5, epsg=EPSG, west=WEST, north=NORTH)
    source = write_catalog(scenes, tmp_path / "src")
    assert not mosaic(source, tmp_path / "plain").failed
    assert not mosaic(source, tmp_path / "out", params(**{"mosaic.mask_buffer_m": buffer_m})).failed
    pixels, count, manifest = read_tile(tmp_path / "out")
    want, want_count = reference(scenes, buffer_px=buffer_m // 20)
    assert np.array_equal(pixels, want) and np.array_equal(count, want_count)
    assert count.sum() < read_tile(tmp_path / "plain")[1].sum()
    assert manifest["request"]["params"]["mask_buffer_m"] == buffer_m


def test_a_baseline_that_is_not_a_number_rejects_its_scene_by_name(tmp_path) -> None:
    scenes = fabricate(3, SIZE, seed=7, epsg=EPSG, west=WEST, north=NORTH)
    odd = dataclasses.replace(scenes[0], baseline="N/A")
    source = write_catalog([odd, *scenes[1:]], tmp_path / "src", "planetary-computer")
    result = mosaic(source, tmp_path / "out")
    assert result.written == [TILE.key], result.failed
    pixels, _, manifest = read_tile(tmp_path / "out")
    excluded = manifest["seasons"]["summer"]["excluded"]
    assert [e["id"] for e in excluded] == [odd.id] and "'N/A' is not a number" in excluded[0]["reason"]
    assert np.array_equal(pixels, reference(scenes[1:])[0])


@pytest.mark.parametrize("value", ["cubic", "average", "lanczos"])
def test_unsupported_20m_resampling_is_refused_when_params_load(value) -> None:
    from conftest import REPO

    with pytest.raises(LandcoverError, match="mosaic.resampling_20m"):
        load_params(REPO / "params.yaml", {"mosaic.resampling_20m": value})


def test_a_scene_of_another_utm_zone_is_read_by_nearest(tmp_path) -> None:
    """A scene stored in zone 31 over a tile of zone 32 (9 deg E): every clear 10 m pixel takes the
    scene pixel its centre falls in (pyproj per pixel, not GDAL's warper), and no band mixes pixels.
    GDAL's warper approximates the transform to an eighth of a pixel, so a few centres near a pixel
    edge may land in the neighbour: at most 1 % of pixels, each then equal to a neighbour's value."""
    from pyproj import Transformer

    to31 = Transformer.from_crs(32632, 32631, always_xy=True)
    w, s, e, n = TILE.bounds
    xs, ys = to31.transform([w, e, w, e], [s, s, n, n])
    west, north = math.floor(min(xs) / 20) * 20 - 200, math.ceil(max(ys) / 20) * 20 + 200
    size = int((max(max(xs) - west, north - min(ys)) + 200) // 20) * 2
    rng = np.random.default_rng(4)
    truth = rng.integers(1000, 5000, (len(BANDS), size, size)).astype(np.float64)
    when = dt.datetime(2023, 7, 10, 10, 30, tzinfo=dt.UTC)
    scene = FakeScene(f"S2B_T31TGL_{when:%Y%m%dT%H%M%S}_L2A", when, 32631, float(west), float(north), truth,
                      np.full((size // 2, size // 2), 4, np.uint8))
    assert not mosaic(write_catalog([scene], tmp_path / "src"), tmp_path / "out",
                      params(**{"mosaic.resampling_20m": "nearest"})).failed
    pixels, count, _ = read_tile(tmp_path / "out")
    jj, ii = np.mgrid[0:SIZE, 0:SIZE]
    x, y = to31.transform(TILE.west + 10 * (ii + 0.5), TILE.north - 10 * (jj + 0.5))
    col, row = ((x - west) // 10).astype(int), ((north - y) // 10).astype(int)
    for band in ("B02", "B08"):  # 10 m bands: the scene's own 10 m pixel
        want = scene.dn(band)[row, col] - 1000
        got = pixels[BANDS.index(band)]
        assert (got == want).mean() > 0.99 and (count == 1).all()
        wrong = got != want
        neighbours = {scene.dn(band)[r + dr, c + dc] - 1000 for r, c in zip(row[wrong], col[wrong], strict=True)
                      for dr in (-1, 0, 1) for dc in (-1, 0, 1)}
        assert set(got[wrong].tolist()) <= neighbours
    assert set(np.unique(pixels[BANDS.index("B05")])) <= set(np.unique(scene.dn("B05") - 1000))  # nothing mixed
