"""Figure 3, training input pipeline: crops per second that the training DataLoader delivers
(`TrainCrops`: rare-class centring, season dropout, normalisation, D4 augmentation, collation into
batches, worker processes) divided by the rate of bare random window reads of the same files with
rasterio (four seasons and the label, handles kept open), both per worker. Target: at least 0.8.
Also reported: crops per second per worker, to size a GPU node (workers per GPU).

Both arms read cache-cold, as an epoch over thousands of tiles does (a few random crops per tile,
so GDAL's block cache never hits): GDAL_CACHEMAX is set small for both. The bare arm runs in one
process; the DataLoader arm runs with one worker (the parent only collates batches) and, for the
node sizing, with as many workers as cores. The arms alternate; the figure is the median of the
per-round ratios.
"""

from __future__ import annotations

import os
import sys

import _common as c

CACHE = "16MB"  # a few blocks: a crop's 4 seasons x 10 bands fit, nothing survives between crops
os.environ["GDAL_CACHEMAX"] = CACHE  # before rasterio initialises GDAL; inherited by workers


def main() -> dict:
    import numpy as np
    import rasterio
    import torch
    from rasterio.windows import Window
    from torch.utils.data import DataLoader

    from landcover.model.normalization import NormStats
    from landcover.training.data import TrainCrops, index_tiles

    c.threads()
    root = c.synth_dataset("train4x1024", 1024, cities=4, tiles_per_city=1, seed=11)
    tiles = c.tiles_of(root)
    _, p = c.default_bundle()
    t = p.train
    crop = t.crop_size
    n_crops = 160 if c.quick() else 600
    infos = index_tiles(tiles, crop, tuple(t.rare_classes), seed=0)
    norm = NormStats(np.full(40, 0.15, np.float32), np.full(40, 0.08, np.float32))
    per_tile = max(1, n_crops // len(tiles))
    dataset = TrainCrops(infos, norm, crop, per_tile, t.rare_class_crop_share, t.season_dropout)
    n = len(dataset)

    def bare() -> None:
        rng = np.random.default_rng(0)
        handles = {}
        try:
            for i in range(n):
                info = infos[i % len(infos)]
                r0 = int(rng.integers(0, info.height - crop + 1))
                c0 = int(rng.integers(0, info.width - crop + 1))
                window = Window(c0, r0, crop, crop)
                for path in [*(info.tile.season_path(s) for s in c.SEASON_NAMES), info.tile.label_path]:
                    ds = handles.get(path)
                    if ds is None:
                        ds = handles[path] = rasterio.open(path)
                    ds.read(window=window)
        finally:
            for ds in handles.values():
                ds.close()

    def loader(workers: int):
        def run() -> None:
            dl = DataLoader(dataset, batch_size=t.batch_size, shuffle=True, num_workers=workers,
                            pin_memory=False, persistent_workers=False)
            got = 0
            for x, _ in dl:
                got += len(x)
            assert got == n, (got, n)
        return run

    cores = os.cpu_count() or 1
    arms = {"bare_reads": bare, "dataloader_1_worker": loader(1)}
    if cores > 1:
        arms[f"dataloader_{cores}_workers"] = loader(cores)
    arms["dataset_in_process"] = loader(0)
    c.log(f"figure 3: {n} crops of {crop} px from {len(tiles)} tiles of 1024 px, batch {t.batch_size}, "
          f"GDAL_CACHEMAX {CACHE}")
    bare()  # warm the page cache and imports (both arms then read the files from memory)
    times = c.interleave(arms, 1 if c.quick() else 3)
    rate = {k: n / c.median(v) for k, v in times.items()}
    per_worker_1 = rate["dataloader_1_worker"]
    ratio = c.paired_ratio(times, "bare_reads", "dataloader_1_worker")  # rate ratio = inverse time ratio
    result = {
        "ratio": c.rnd(ratio, 3),
        "target": ">= 0.8",
        "met": ratio >= 0.8,
        "crops_per_s_per_worker": c.rnd(per_worker_1, 1),
        "bare_reads_crops_per_s": c.rnd(rate["bare_reads"], 1),
        "dataloader_1_worker_crops_per_s": c.rnd(per_worker_1, 1),
        "dataset_in_process_crops_per_s": c.rnd(rate["dataset_in_process"], 1),
        "ratio_in_process": c.rnd(rate["dataset_in_process"] / rate["bare_reads"], 3),
        "crops": n, "crop_size": crop, "batch_size": t.batch_size,
        "gdal_cachemax": CACHE,
        "runs_s": {k: [c.rnd(x, 2) for x in v] for k, v in times.items()},
    }
    if cores > 1:
        all_rate = rate[f"dataloader_{cores}_workers"]
        result[f"dataloader_{cores}_workers_crops_per_s"] = c.rnd(all_rate, 1)
        result[f"crops_per_s_per_worker_with_{cores}_workers"] = c.rnd(all_rate / cores, 1)
    # a GPU step needs batch_size crops; crops/s per worker sizes the workers one GPU needs
    result["note"] = ("workers per GPU = GPU training samples/s (bench_gpu) / crops_per_s_per_worker")
    del torch
    return c.emit("training_input", result)


if __name__ == "__main__":
    main()
    sys.exit(0)
