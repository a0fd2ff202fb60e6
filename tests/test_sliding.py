"""Sliding-window prediction: no seams, exact grid, flat memory, nodata handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from landcover.dataset import discover_tiles, read_stack
from landcover.inference.sliding import SlidingPredictor, TileSource, blend_weights, predict_tile_classes
from landcover.model.bundle import BundleMeta, ModelBundle
from landcover.model.normalization import NormStats, normalize
from landcover.synth.generate import SynthOptions, generate


def _pixelwise_bundle() -> ModelBundle:
    """A per-pixel network (1x1 conv): its sliding prediction must equal the whole-image one."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(40, 10, 1)
    norm = NormStats(np.full(40, 0.1, np.float32), np.full(40, 0.05, np.float32))
    meta = BundleMeta("Unet", "resnet18", 4, norm.to_dict(), {i: 90 + i for i in range(1, 11)}, "t")
    return ModelBundle(net, meta)


@pytest.fixture(scope="module")
def odd_tile(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("odd") / "data"
    generate(root, SynthOptions(cities=1, tiles_per_city=1, size=100, seed=5))
    return discover_tiles(root)[0][0]


def test_blend_weights_sum_to_one_across_overlap() -> None:
    w = blend_weights(64, 16)[32]
    assert np.allclose(w[-16:] + w[:16], 1.0, atol=1e-3)  # adjacent windows' ramps add to 1


@pytest.mark.parametrize(("window", "overlap"), [(32, 8), (64, 16), (128, 0), (256, 32)])
def test_sliding_equals_whole_image_for_pixelwise_model(odd_tile, window: int, overlap: int) -> None:
    bundle = _pixelwise_bundle()
    stack = read_stack(odd_tile)
    with torch.inference_mode():
        expected = torch.softmax(bundle.network(torch.from_numpy(normalize(stack, bundle.norm))[None]), 1)[0]
    expected_codes = expected.argmax(0).numpy() + 1
    got = np.zeros((10, 100, 100), np.float32)
    rows_seen = []

    def keep(row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
        rows_seen.append((row0, probs.shape[1]))
        got[:, row0 : row0 + probs.shape[1]] = probs

    with TileSource(odd_tile) as src:
        SlidingPredictor(bundle, window, overlap, batch_size=3).predict(src, keep)
    assert sum(n for _, n in rows_seen) == 100  # every row handed over exactly once
    assert np.allclose(got, expected.numpy(), atol=1e-5)
    codes, conf = predict_tile_classes(SlidingPredictor(bundle, window, overlap), odd_tile)
    valid = (stack != 0).any(0)
    assert np.array_equal(codes[valid], expected_codes[valid])
    assert (conf[valid] >= 10).all() and conf.max() <= 100


def test_nodata_pixels_give_nodata(tmp_path: Path, odd_tile) -> None:
    import shutil

    import rasterio

    tile_dir = tmp_path / "tiles" / odd_tile.city_id / odd_tile.tile_id
    shutil.copytree(odd_tile.directory, tile_dir)
    for season in ("spring", "summer", "autumn", "winter"):
        path = tile_dir / f"{season}.tif"
        with rasterio.open(path, "r+") as ds:
            data = ds.read()
            data[:, 10:20, 30:50] = 0
            ds.write(data)
    tile = discover_tiles(tmp_path)[0][0]
    codes, conf = predict_tile_classes(SlidingPredictor(_pixelwise_bundle(), 64, 16), tile)
    assert (codes[10:20, 30:50] == 0).all() and (conf[10:20, 30:50] == 0).all()
    assert (codes[30:] > 0).all()


def test_window_must_fit_encoder_stride() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        SlidingPredictor(_pixelwise_bundle(), 100, 10)
