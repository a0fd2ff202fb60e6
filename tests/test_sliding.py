"""Sliding-window prediction: no seams, exact grid, flat memory, nodata handling."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from landcover.dataset import discover_tiles, read_stack
from landcover.model.bundle import BundleMeta, ModelBundle
from landcover.model.normalization import NormStats, normalize
from landcover.parallel import lower_thread_priority
from landcover.sliding import SlidingPredictor, TileSource, blend_weights, predict_tile_classes
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


@pytest.fixture(scope="module")
def tall_tile(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tall") / "data"
    generate(root, SynthOptions(cities=1, tiles_per_city=1, size=300, seed=7))
    return discover_tiles(root)[0][0]


def test_parallel_read_equals_serial_read(tall_tile) -> None:
    """The first strip is read one thread per file; the bytes must not depend on it."""
    with TileSource(tall_tile, drop_season="autumn") as src:
        assert 20 // src.block_rows != 269 // src.block_rows  # the rows cross a block-row boundary
        serial = np.full((40, 250, src.width), 7, np.uint16)
        parallel = np.full_like(serial, 9)
        src.read_rows_into(20, 270, serial)
        src.read_rows_into(20, 270, parallel, parallel=True)
        src.read_rows_into(5, 5, parallel, parallel=True)  # an empty range reads nothing
    assert np.array_equal(serial, parallel)
    with TileSource(tall_tile) as src:
        expected = src.read_rows(20, 270)
    expected[20:30] = 0  # autumn (channels 20-29) dropped
    assert np.array_equal(serial, expected)


class _FailingNet(torch.nn.Module):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.conv, self.calls, self.after = torch.nn.Conv2d(40, 10, 1), 0, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("CUDA out of memory")
        return self.conv(x)


def _sliding_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("sliding-", "tile-read"))]


def test_failures_on_either_side_of_the_model_stop_prediction_and_its_threads(odd_tile) -> None:
    calls = []

    def full_disk(row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
        calls.append(row0)
        raise OSError("No space left on device")

    with TileSource(odd_tile) as src, pytest.raises(OSError, match="No space left"):
        SlidingPredictor(_pixelwise_bundle(), 32, 8, batch_size=2).predict(src, full_disk)
    assert len(calls) == 1  # the first strip's rows failed; nothing was handed over after
    assert not _sliding_threads()

    bundle = _pixelwise_bundle()
    bundle.network = _FailingNet(after=3)
    with TileSource(odd_tile) as src, pytest.raises(RuntimeError, match="out of memory"):
        SlidingPredictor(bundle, 32, 8, batch_size=2).predict(src, lambda *a: None)
    assert not _sliding_threads()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_work_beside_the_model_runs_below_its_priority(odd_tile) -> None:
    def nice(thread_id: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, thread_id)

    model_thread = threading.get_native_id()
    base = nice(model_thread)
    blender, reader = set(), set()

    def keep(row0: int, probs: np.ndarray, valid: np.ndarray) -> None:  # runs in the blender thread
        blender.add(nice(threading.get_native_id()))
        reader.update(nice(t.native_id) for t in threading.enumerate() if t.name == "sliding-reader" and t.is_alive())

    with TileSource(odd_tile) as src:
        SlidingPredictor(_pixelwise_bundle(), 32, 8, background_nice=3).predict(src, keep)
    assert blender == {min(19, base + 3)}
    assert reader == {min(19, base + 3)}  # after the model's first batch
    assert nice(model_thread) == base  # the model's thread keeps its priority
    with TileSource(odd_tile) as src:
        blender.clear()
        SlidingPredictor(_pixelwise_bundle(), 32, 8, background_nice=0).predict(src, keep)
    assert blender == {base}

    def started_by_a_lowered_thread() -> None:  # inherits base + 3; asking again must not go lower
        lower_thread_priority(3)
        blender.add(nice(threading.get_native_id()))

    def lowered_thread() -> None:
        lower_thread_priority(3)
        child = threading.Thread(target=started_by_a_lowered_thread)
        child.start()
        child.join()

    blender.clear()
    thread = threading.Thread(target=lowered_thread)
    thread.start()
    thread.join()
    assert blender == {min(19, base + 3)}
