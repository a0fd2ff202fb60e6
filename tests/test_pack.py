"""The packed training store: same pixels as the GeoTIFFs (through our reader and zarr's), from a
local path or an fsspec URL, any chunking and codec; resumable builds; the training crops it gives
are the GeoTIFF path's crops."""

from __future__ import annotations

import json
import os

import fsspec
import numpy as np
import pytest
import torch
import zarr
from rasterio.windows import Window
from torch.utils.data import DataLoader

from conftest import REPO
from landcover.config import load_params
from landcover.dataset import read_label, read_stack
from landcover.pack import stage as pack_stage
from landcover.pack.stage import run_pack
from landcover.splitfile import read_split
from landcover.training.data import RING_SLOTS, BatchRing, CropSampler, TrainCrops, ValCrops, collate, index_tiles
from landcover.training.sources import GeoTiffSource, StoreSource
from landcover.trainstore.layout import PackedStore
from landcover.trainstore.shards import MISSING, LocalBytes, ShardedArray, StoreError, _ranges, byte_source


def _windows(rng: np.random.Generator, size: int, n: int) -> list[tuple[int, int, int, int]]:
    out = [(0, 0, size, size), (size - 7, size - 9, 7, 9)]
    for _ in range(n):
        h, w = int(rng.integers(1, size + 1)), int(rng.integers(1, size + 1))
        out.append((int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1)), h, w))
    return out


@pytest.mark.parametrize(("chunk", "compression"), [(128, "none"), (24, "none"), (16, "lz4"), (40, "zstd")])
def test_store_windows_equal_the_geotiffs_and_zarrs_own_reads(tiny_dataset, tiny_split, tmp_path, chunk, compression):
    p = load_params(REPO / "params.yaml", {"pack.chunk": chunk, "pack.compression": compression})
    result = run_pack(p, tiny_dataset, tiny_split, tmp_path / "store.zarr")
    assert result.metrics_path == tmp_path / "store.json"
    assert json.loads(result.metrics_path.read_text())["store_mb"] > 0
    store = PackedStore(str(tmp_path / "store.zarr"))
    group = zarr.open_group(str(tmp_path / "store.zarr"), mode="r")
    tiles = {s: read_split(tiny_split, tiny_dataset, s) for s in ("train", "val")}
    assert {(t.split, t.key) for t in store.meta.tiles} == {(s, t.key) for s, ts in tiles.items() for t in ts}
    rng = np.random.default_rng(chunk)
    for split, refs in tiles.items():
        for ref in refs:
            for row, col, h, w in _windows(rng, 64, 6):
                pixels = store.read(split, ref.key, row, col, h, w)
                window = Window(col, row, w, h)
                assert np.array_equal(np.moveaxis(pixels[..., :40], -1, 0), read_stack(ref, window))
                assert np.array_equal(pixels[..., 40], read_label(ref, window))
                assert np.array_equal(pixels, group[f"{split}/{ref.key}/pixels"][row:row + h, col:col + w])
            assert np.array_equal(store.label(split, ref.key), read_label(ref))
    assert (group[f"train/{tiles['train'][0].key}/pixels"].chunks) == (chunk, chunk, 41)


def test_a_store_streams_from_an_fsspec_url(tiny_store, tiny_dataset, tiny_split) -> None:
    fs = fsspec.filesystem("memory")
    fs.put(str(tiny_store), "/stores/tiny.zarr", recursive=True)
    remote = PackedStore("memory://stores/tiny.zarr")
    local = PackedStore(str(tiny_store))
    assert type(remote.source).__name__ == "FsspecBytes"
    for t in local.meta.tiles:
        assert np.array_equal(remote.read(t.split, t.key, 5, 9, 40, 33), local.read(t.split, t.key, 5, 9, 40, 33))
    fs.rm("/stores", recursive=True)


def test_chunks_never_written_read_as_fill_and_a_damaged_index_is_named(tmp_path) -> None:
    data = np.ones((48, 48, 2), np.uint16)
    data[16:32, 16:32] = 0  # an inner chunk of fill value: zarr leaves it out of the shard
    array = zarr.create_array(str(tmp_path / "a"), shape=data.shape, dtype="uint16", chunks=(16, 16, 2),
                              shards=(48, 48, 2), compressors=None, fill_value=0)
    array[...] = data
    source, root = byte_source(str(tmp_path / "a"))
    reader = ShardedArray(source, root)
    assert reader.index()[1, 1, 0] == MISSING
    assert np.array_equal(reader.read(10, 10, 30, 30), data[10:40, 10:40])
    with pytest.raises(StoreError, match="outside"):
        reader.read(40, 40, 10, 10)
    shard = tmp_path / "a/c/0/0/0"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # one byte of the index
    shard.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=r"a/c/0/0/0: shard index checksum"):
        ShardedArray(*byte_source(str(tmp_path / "a"))).read(0, 0, 4, 4)


def test_arrays_without_a_shard_read_as_fill_and_few_files_stay_mapped(tmp_path) -> None:
    """An all-zero array gets no shard file from zarr (a label with nothing labelled); a reader
    over more shards than it may keep mapped unmaps the oldest and still reads right."""
    zarr.create_array(str(tmp_path / "empty"), shape=(40, 40, 1), dtype="uint8", chunks=(16, 16, 1),
                      shards=(48, 48, 1), compressors=None, fill_value=0)[...] = 0
    assert not (tmp_path / "empty/c/0/0/0").exists()
    assert not ShardedArray(*byte_source(str(tmp_path / "empty"))).read(3, 4, 20, 30).any()
    source = LocalBytes(max_open=2)
    arrays = []
    for k in range(5):
        data = np.full((32, 32, 3), k + 1, np.uint16)
        zarr.create_array(str(tmp_path / f"a{k}"), shape=data.shape, dtype="uint16", chunks=(16, 16, 3),
                          shards=(32, 32, 3), compressors=None, fill_value=0)[...] = data
        arrays.append(ShardedArray(source, str(tmp_path / f"a{k}")))
    for _ in range(2):
        for k, a in enumerate(arrays):
            assert (a.read(8, 8, 16, 16) == k + 1).all()
            assert len(source.maps) <= 2


def test_prefetch_ranges_merge_only_touching_chunks() -> None:
    assert _ranges([(300, 100), (0, 100), (100, 100)]) == [(0, 200), (300, 100)]  # zarr's Morton order


def test_an_interrupted_pack_resumes_and_never_leaves_a_half_store(dataset_copy, tiny_split, tmp_path, monkeypatch):
    p = load_params(REPO / "params.yaml", {"pack.workers": 1})
    out = tmp_path / "store.zarr"
    calls = {"n": 0}
    real = pack_stage.write_tile

    def dies_on_the_fourth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # as a killed build
        return real(*args, **kwargs)

    monkeypatch.setattr(pack_stage, "write_tile", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_pack(p, dataset_copy, tiny_split, out)
    assert not out.exists() and (tmp_path / "store.zarr.partial").is_dir()
    monkeypatch.setattr(pack_stage, "write_tile", real)
    resumed = run_pack(p, dataset_copy, tiny_split, out)
    assert resumed.resumed == 3 and not (tmp_path / "store.zarr.partial").exists()
    # a tile whose file changed since is packed again, not kept
    monkeypatch.setattr(pack_stage, "write_tile", dies_on_the_fourth)
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        run_pack(p, dataset_copy, tiny_split, tmp_path / "again.zarr")
    first = read_split(tiny_split, dataset_copy, "train")[0]
    os.utime(first.label_path, ns=(first.label_path.stat().st_atime_ns, first.label_path.stat().st_mtime_ns + 10**9))
    monkeypatch.setattr(pack_stage, "write_tile", real)
    assert run_pack(p, dataset_copy, tiny_split, tmp_path / "again.zarr").resumed == 0
    fresh = run_pack(p, dataset_copy, tiny_split, tmp_path / "fresh.zarr")
    a, b = PackedStore(str(out)), PackedStore(str(fresh.out))
    assert a.meta.to_dict() == b.meta.to_dict()
    for t in a.meta.tiles:
        assert np.array_equal(a.read(t.split, t.key, 0, 0, t.height, t.width),
                              b.read(t.split, t.key, 0, 0, t.height, t.width))


def test_store_and_geotiff_paths_give_the_same_crops(tiny_dataset, tiny_split, tiny_store) -> None:
    """Rare-class centring, season dropout and the D4 draw are shared code fed by (seed, epoch,
    index): the two sources give identical crops, so the same distribution, epoch after epoch."""
    store = PackedStore(str(tiny_store))
    paths = {"store": StoreSource(store, "train"), "geotiff": GeoTiffSource(read_split(tiny_split, tiny_dataset,
                                                                                       "train"))}
    datasets = {}
    for name, source in paths.items():
        infos = index_tiles(source, 32, (1, 3, 4), seed=1)
        datasets[name] = TrainCrops(infos, source, 32, 6, rare_share=0.5, season_dropout=0.3, seed=1)
    assert [i.rare_rc.tolist() for i in datasets["store"].infos] == [i.rare_rc.tolist()
                                                                     for i in datasets["geotiff"].infos]
    dropped, rotations = 0, set()
    for epoch in (0, 1):
        sampler = CropSampler(len(datasets["store"]), seed=1)
        sampler.set_epoch(epoch)
        for item in sampler:
            a, b = datasets["store"][item], datasets["geotiff"][item]
            assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True)), item
            dropped += int(a.drop.sum())
            rotations.add(tuple(a.d4.tolist()))
    assert dropped > 0 and len(rotations) == 8  # dropout happens and every D4 element is drawn


def test_store_crops_through_loader_workers(tiny_store) -> None:
    """Loader workers open their own handles (the dataset pickles without mappings or batch
    buffers); every validation crop arrives once, each batch checked before the next. Spawned
    workers: forking this test process after the Prefect and Dask tests leaves workers that exit 1
    at shutdown, whatever they run."""
    source = StoreSource(PackedStore(str(tiny_store)), "val")
    ds = ValCrops(index_tiles(source, 32, ()), source, 32, 4)
    ds.ring = BatchRing(RING_SLOTS)  # as the training loaders: batches recycled in turn
    loader = DataLoader(ds, batch_size=3, sampler=CropSampler(len(ds), 0, shuffle=False), num_workers=2,
                        collate_fn=collate, prefetch_factor=2, multiprocessing_context="spawn")
    fresh = ValCrops(ds_infos := index_tiles(source, 32, ()), source, 32, 4)
    seen = 0
    for k, b in enumerate(loader):  # each batch checked before the next arrives, as training uses them
        want = fresh.__getitems__(list(range(3 * k, 3 * k + len(b.pixels))))
        assert torch.equal(b.pixels, want.pixels) and not b.d4.any() and not b.drop.any()
        seen += len(b.pixels)
    assert seen == len(ds) == len(ds_infos) * 4
