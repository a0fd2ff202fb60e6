"""Figure 3, training input: crops per second per core from the packed store, the GeoTIFF path and a
bare copy out of an `np.memmap` of the same bytes (the physical limit), at 256 px (the full-scale
crop) and 64 px, page cache warm and cold.

- store: `TrainCrops` on `StoreSource` through a DataLoader in the process (rare-class centring,
  season dropout, the D4 draw, collation into batches); one core, torch on one thread.
- geotiff: the same `TrainCrops` on `GeoTiffSource` (five deflate GeoTIFFs per tile, handles kept
  open) with GDAL's block cache as a user has it: GDAL's default (5 % of RAM) unless the environment
  sets GDAL_CACHEMAX; the size in effect is reported. Until 2026-12-06 it ran with 16 MB, which
  never reuses a decoded block; the four 1024 px tiles decode to about 330 MB, so the default cache holds
  all of them after a warm epoch, which a dataset larger than the cache would not.
- memmap: random windows copied out of one raw (H, W, 41) uint16 `.npy` per tile (40 bands and the
  label, the store's byte order without chunks) into batch buffers like the loader's (16 crops a
  batch, 8 batches in turn): no decoding, no sampling logic, no loader. The same copy into one
  crop-sized buffer, which stays in the CPU cache and so flatters it by about 1.3x, is reported
  as `memmap_hot_buffer_*` for reference. Cold, the memmap copy first gets the store's prefetch
  advice, MADV_WILLNEED on every byte range the crop reads (one per crop row here, a few merged
  chunks in the store), so the kernel starts those reads at once as it does for the store (since
  2026-12-06; before, only the store was advised). The store's residency check (`mincore`) before
  each advice is left out: cold it always says "advise", and run from Python on 256 ranges a crop
  instead of the store's few it cost the copy 2.5x its rate. The copy without advice is reported as
  `memmap_unadvised_cold_*`; warm, no advice is given (it would only add checks to the limit).
- warm: the files' pages in the OS cache (a node whose RAM or local NVMe holds the shard). cold:
  `posix_fadvise(DONTNEED)` on every file of the arm before each run (a first epoch from network
  storage); the page-cache residency measured after dropping is reported, so cold is checked.

Targets (issue 15): warm, store >= 250 crops/s per core at 256 px and within 1.5x of memmap;
cold, within 1.5x of memmap. Arms alternate, three runs each, medians. Also: store size against
the GeoTIFFs and its build time (`landcover pack`'s stage function).
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import os
import sys
from pathlib import Path

import _common as c

TARGET_PER_CORE = 250.0
TARGET_OF_MEMMAP = 1 / 1.5
ARMS = ("store", "geotiff", "memmap")


def gdal_cache_mb(what: str = "Max") -> float | None:
    """GDAL's block cache in this process, MB: its limit ("Max") or what it holds ("Used")
    (GDALGetCache{Max,Used}64 of the libgdal that rasterio loaded; None where it cannot be found)."""
    import rasterio

    try:
        libs = sorted({line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                       if "libgdal" in line.rsplit("/", 1)[-1]})
        fn = getattr(ctypes.CDLL(libs[0]), f"GDALGetCache{what}64")
        fn.restype = ctypes.c_int64
        with rasterio.Env():
            return round(fn() / 2**20, 1)
    except (OSError, IndexError, AttributeError):
        return None


def drop_cache(files: list[Path]) -> None:
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_fraction(files: list[Path]) -> float:
    """Share of the files' pages in the page cache (mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    resident = total = 0
    for f in files:
        size = f.stat().st_size
        if size == 0:
            continue
        with open(f, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY)  # private: never written back
            try:
                n = (size + page - 1) // page
                vec = (ctypes.c_ubyte * n)()
                anchor = ctypes.c_char.from_buffer(mm)
                ok = libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec) == 0
                del anchor
                if not ok:
                    return float("nan")
                resident += sum(v & 1 for v in vec)
                total += n
            finally:
                mm.close()
    return resident / total if total else float("nan")


def main() -> dict:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from landcover.config import load_params
    from landcover.dataset import read_label, read_stack
    from landcover.training.data import RING_SLOTS, BatchRing, CropSampler, TrainCrops, collate, index_tiles
    from landcover.training.sources import GeoTiffSource, StoreSource
    from landcover.trainstore.layout import PackedStore

    torch.set_num_threads(1)  # per core
    root = c.synth_dataset("train4x1024", 1024, cities=4, tiles_per_city=1, seed=11)
    tiles = c.tiles_of(root)
    p = load_params(c.REPO / "params.yaml")
    t = p.train
    work = c.RESULTS / "work" / "training_input"
    work.mkdir(parents=True, exist_ok=True)

    c.log("figure 3: packing the store")
    packed = c.packed_store(root, work)
    store_files = [f for f in (work / "store.zarr").rglob("*") if f.is_file()]
    geotiff_files = [f for x in tiles for f in x.files()]
    memmap_files = []
    for x in tiles:
        path = work / f"{x.city_id}_{x.tile_id}.hwc.npy"
        if not path.exists():
            stack = np.concatenate([read_stack(x), read_label(x)[None].astype(np.uint16)])
            np.save(path, np.ascontiguousarray(np.moveaxis(stack, 0, -1)))
        memmap_files.append(path)
    files = {"store": store_files, "geotiff": geotiff_files, "memmap": memmap_files}

    def dataset(arm: str, crop: int, n: int) -> TrainCrops:
        if arm == "store":
            source = StoreSource(PackedStore(str(work / "store.zarr")), "train")
        else:
            source = GeoTiffSource(tiles)
        infos = index_tiles(source, crop, tuple(t.rare_classes), seed=0)
        return TrainCrops(infos, source, crop, max(1, n // len(infos)), t.rare_class_crop_share, t.season_dropout,
                          ring=BatchRing(RING_SLOTS))  # as the training loaders build it

    gdal_left: list[float] = []  # GDAL's cache at the start of each cold run: 0 when cold is cold

    def crops_arm(arm: str, crop: int, n: int, state: str, workers: int = 0):
        """Warm: one dataset and loader for every run, as in an epoch (mappings, shard indices, GDAL
        handles and their cached blocks, batch buffers reused). Cold: a fresh one per run, after the
        pages are dropped, released when the run ends (pages a live mapping holds cannot be dropped,
        and GDAL keeps decoded blocks while a handle is open)."""
        held: dict = {}

        def loader(epoch: int) -> DataLoader:
            if state == "cold" or "loader" not in held:
                ds = dataset(arm, crop, n)
                held["loader"] = DataLoader(ds, batch_size=t.batch_size, sampler=CropSampler(len(ds), 0),
                                            collate_fn=collate, num_workers=workers,
                                            persistent_workers=workers > 0)
            held["loader"].sampler.set_epoch(epoch)
            return held["loader"]

        def run() -> None:
            if state == "cold":
                drop_cache(files[arm])
                gdal_left.append(gdal_cache_mb("Used") or 0.0)
            held["epoch"] = held.get("epoch", 0) + 1
            dl = loader(held["epoch"])
            got = sum(len(b.pixels) for b in dl)
            assert got == len(dl.dataset), (got, len(dl.dataset))
            if state == "cold":
                held.pop("loader")
                gc.collect()  # closes the run's GDAL handles and unmaps its shards now
        return run, lambda: len(dataset(arm, crop, n))

    def memmap_arm(crop: int, n: int, state: str, hot: bool = False, advise: bool | None = None):
        if hot:  # one crop buffer, cache-resident
            slots = [np.empty((1, crop, crop, 41), np.uint16)]
        else:  # batch buffers used in turn, as the loader's BatchRing (and faulted in once, as its are)
            slots = [np.ones((t.batch_size, crop, crop, 41), np.uint16) for _ in range(RING_SLOTS)]
        per = len(slots[0])
        held: list = []
        advise = state == "cold" if advise is None else advise
        page = mmap.PAGESIZE

        def run() -> None:
            if state == "cold":
                held.clear()
                drop_cache(memmap_files)
            if not held:
                held.extend(np.load(f, mmap_mode="r") for f in memmap_files)
            rng = np.random.default_rng(n)
            for i in range(n):
                a = held[i % len(held)]
                r0, c0 = rng.integers(0, a.shape[0] - crop + 1, 2)
                if advise:  # the store's advice on the crop's bytes (one range per crop row), on the memmap's mapping
                    row, px = a.strides[0], a.strides[1]
                    first = a.offset % mmap.ALLOCATIONGRANULARITY + int(r0) * row + int(c0) * px
                    for start in range(first, first + crop * row, row):
                        a._mmap.madvise(mmap.MADV_WILLNEED, start // page * page, start % page + crop * px)
                slots[(i // per) % len(slots)][i % per] = a[r0:r0 + crop, c0:c0 + crop]
            if state == "cold":
                held.clear()  # unmapped, or the next cold arm on these files could not drop their pages
        return run, lambda: n

    quick = c.quick()
    counts = {  # crops per run: about a second each for the faster arms
        (256, "warm"): {"store": 320, "geotiff": 64, "memmap": 320},
        (64, "warm"): {"store": 2000, "geotiff": 320, "memmap": 4000},
        (256, "cold"): {"store": 64, "geotiff": 32, "memmap": 64},  # few: crops of a first epoch rarely overlap
        (64, "cold"): {"store": 400, "geotiff": 160, "memmap": 400},
    }
    result: dict = {}
    residency = {}
    for (crop, state), n_of in counts.items():
        if quick:
            n_of = {k: max(16, v // 8) for k, v in n_of.items()}
        arms, sizes = {}, {}
        for arm in ARMS:
            if arm == "memmap":
                run, size = memmap_arm(crop, n_of[arm], state)
            else:
                run, size = crops_arm(arm, crop, n_of[arm], state)
            arms[arm], sizes[arm] = run, size()
        if state == "warm":  # a loader worker process: what each core of a GPU node gives the trainer
            run, size = crops_arm("store", crop, n_of["store"], state, workers=1)
            arms["store_1_worker"], sizes["store_1_worker"] = run, size()
            run, size = memmap_arm(crop, n_of["memmap"], state, hot=True)
            arms["memmap_hot_buffer"], sizes["memmap_hot_buffer"] = run, size()
        else:  # the copy without the store's prefetch advice, as measured until 2026-12-06
            run, size = memmap_arm(crop, n_of["memmap"], state, advise=False)
            arms["memmap_unadvised"], sizes["memmap_unadvised"] = run, size()
        c.log(f"figure 3: {crop} px, {state}: {sizes}")
        if state == "warm":
            for run in arms.values():
                run()  # pages and imports warm
        else:
            for arm in ARMS:
                drop_cache(files[arm])
                residency[arm] = round(resident_fraction(files[arm]), 4)
        times = c.interleave(arms, 1 if quick else 3)
        rate = {arm: sizes[arm] / c.median(times[arm]) for arm in arms}
        for arm in arms:
            result[f"{arm}_{state}_{crop}px_crops_per_s_per_core"] = c.rnd(rate[arm], 1)
        # paired per round (both arms back to back), robust to load drifting between rounds
        result[f"store_to_memmap_{state}_{crop}px"] = c.rnd(
            c.median([(sizes["store"] / a) / (sizes["memmap"] / b)
                      for a, b in zip(times["store"], times["memmap"], strict=True)]), 3)
        result[f"store_to_geotiff_{state}_{crop}px"] = c.rnd(rate["store"] / rate["geotiff"], 2)
        result[f"runs_s_{state}_{crop}px"] = {k: [c.rnd(x, 3) for x in v] for k, v in times.items()}
        result[f"crops_per_run_{state}_{crop}px"] = sizes

    warm = result["store_warm_256px_crops_per_s_per_core"]
    met = (warm >= TARGET_PER_CORE and result["store_to_memmap_warm_256px"] >= TARGET_OF_MEMMAP
           and result["store_to_memmap_cold_256px"] >= TARGET_OF_MEMMAP)
    return c.emit("training_input", {
        "ratio": result["store_to_memmap_warm_256px"],
        "ratio_meaning": "store / memmap crops per second, warm, 256 px (1 = the physical limit)",
        "target": f">= {TARGET_PER_CORE:.0f} crops/s/core warm at 256 px; store/memmap >= {TARGET_OF_MEMMAP:.3f} "
                  "warm and cold",
        "met": met,
        "store_mb": packed.metrics()["store_mb"], "geotiff_mb": packed.metrics()["geotiff_mb"],
        "store_to_geotiff_size": packed.metrics()["store_to_geotiff_size"],
        "store_build_s": packed.metrics()["build_s"],
        "store_build_s_per_tile": c.rnd(packed.seconds / (len(tiles) + 1), 2),
        "store_chunk": p.pack.chunk, "store_compression": p.pack.compression,
        "page_cache_resident_after_drop": residency,
        "gdal_cache_mb": gdal_cache_mb(), "gdal_cachemax_env": os.environ.get("GDAL_CACHEMAX"),
        "gdal_cache_used_mb_at_cold_start_max": max(gdal_left, default=None),
        "memmap_cold_advice": "MADV_WILLNEED on each crop row's bytes before the copy (the store's advice)",
        "tiles": len(tiles), "tile_px": 1024, "batch_size": t.batch_size, "torch_threads": torch.get_num_threads(),
        **result,
    })


if __name__ == "__main__":
    main()
    sys.exit(0)
