"""Figure 6, GPU (skipped without a CUDA device): training samples per second and GPU utilisation
fed from the packed store, against the same steps on batches already on the GPU; loader workers
picked from the measured per-core crop rate; and batch-inference km2 per second.

Training runs the project's Lightning task (`SegmentationTask`: season dropout, normalisation and
D4 on the GPU, AdamW + OneCycle, CE + Dice, metrics) in bf16 mixed precision for a fixed number
of steps:
1. per core: the store's loader in this process (one core), after a warm-up epoch;
2. ceiling: the same task on one batch already on the GPU, repeated (no loader at all);
3. fed: the store through a DataLoader with W workers, pinned memory, batches recycled
   (`BatchRing`), W = ceil(1.25 x ceiling / per-core rate), at most the cores less one.
fed / ceiling says whether the CPU keeps the GPU busy. GPU utilisation is sampled with nvidia-smi
while each arm runs. Crops are 256 px (BENCH_GPU_CROP), the full-scale training crop.

The store: BENCH_GPU_STORE (a store packed elsewhere: a GPU machine without GDAL can be handed
one), else figure 3's tiles packed here. Inference (`TilePredictor` on the 2048 px tile) runs when
its dependencies are there. BENCH_GPU_DRYRUN=1 runs the same code on the CPU with a few steps (a
check of the script on machines without a GPU; its numbers mean nothing).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import _common as c

DRYRUN = os.environ.get("BENCH_GPU_DRYRUN", "") not in ("", "0")
CROP = int(os.environ.get("BENCH_GPU_CROP", "256"))


class GpuSampler:
    """nvidia-smi utilisation samples (percent) every 200 ms while in the `with` block."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        exe = shutil.which("nvidia-smi")
        if exe and not DRYRUN:
            self.proc = subprocess.Popen(
                [exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.samples.append(float(line.strip()))
            except ValueError:
                continue

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def gpu_store(p) -> Path:
    if os.environ.get("BENCH_GPU_STORE"):
        return Path(os.environ["BENCH_GPU_STORE"])
    root = c.synth_dataset("train4x1024", 1024, cities=4, tiles_per_city=1, seed=11)
    return c.packed_store(root, c.RESULTS / "work" / "gpu").out


def per_core_rate(dataset, batch_size: int, epochs: int = 2) -> float:
    """Crops per second of the loader in this process (one core), the last of `epochs` epochs."""
    import torch
    from torch.utils.data import DataLoader

    from landcover.training.data import CropSampler, collate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=CropSampler(len(dataset), 0), collate_fn=collate)
    try:
        for epoch in range(epochs):
            loader.sampler.set_epoch(epoch)
            t0 = time.perf_counter()
            got = sum(len(b.pixels) for b in loader)
        return got / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)


def train_rate(p, dataset, norm, device: str, steps: int, warmup: int, workers: int, on_device: bool) -> dict:
    """Samples/s of `steps` Lightning training steps after `warmup` steps."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, Dataset

    from landcover.training.data import Batch, CropSampler, collate
    from landcover.training.task import SegmentationTask

    t = p.train
    task = SegmentationTask(t.arch, t.encoder, t.encoder_depth, None, t.lr, t.weight_decay, t.dice_weight,
                            list(t.class_weights), 1, norm_mean=norm.mean.tolist(), norm_std=norm.std.tolist())
    total = steps + warmup
    if on_device:  # the compute ceiling: one batch, already on the GPU, no loader work
        first = dataset.__getitems__(list(range(t.batch_size)))
        batch = Batch(*(x.clone().to(device) for x in first))

        class OnDevice(Dataset):
            def __len__(self) -> int:
                return total

            def __getitem__(self, i: int):
                return batch

        loader = DataLoader(OnDevice(), batch_size=None, shuffle=False, num_workers=0)
    else:
        loader = DataLoader(dataset, batch_size=t.batch_size, sampler=CropSampler(len(dataset), 0), drop_last=True,
                            collate_fn=collate, num_workers=workers, pin_memory=device == "cuda",
                            persistent_workers=workers > 0, prefetch_factor=4 if workers else None)

    marks: dict[str, float] = {}

    class Clock(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if batch_idx + 1 == warmup:
                if device == "cuda":
                    torch.cuda.synchronize()
                marks["start"] = time.perf_counter()
            elif batch_idx + 1 == total:
                if device == "cuda":
                    torch.cuda.synchronize()
                marks["end"] = time.perf_counter()

    trainer = pl.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1,
                         precision=t.precision_gpu if device == "cuda" else t.precision_cpu,
                         max_steps=total, max_epochs=-1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, callbacks=[Clock()], use_distributed_sampler=False)
    with GpuSampler() as gpu:
        trainer.fit(task, train_dataloaders=loader)
    seconds = marks["end"] - marks["start"]
    return {"samples_per_s": round(steps * t.batch_size / seconds, 1), "gpu_util_pct": gpu.mean(),
            "steps": steps, "seconds": round(seconds, 2)}


def inference(p, device: str) -> dict:
    from landcover.inference.stage import TilePredictor

    bundle, _ = c.default_bundle()
    tile = c.tiles_of(c.tile_2048())[0]
    out_dir = c.RESULTS / "work" / "gpu_inference"
    worker = TilePredictor(bundle, c.model_ref(), p, out_dir, device)
    runs = []
    with GpuSampler() as gpu:
        for _ in range(1 if DRYRUN else 3):
            shutil.rmtree(out_dir, ignore_errors=True)
            t0 = time.perf_counter()
            outcome = worker(tile)
            runs.append((time.perf_counter() - t0, outcome.figures["km2"]))
    shutil.rmtree(out_dir, ignore_errors=True)
    seconds = c.median([r[0] for r in runs])
    return {"inference_km2_per_s": round(runs[0][1] / seconds, 2), "inference_s_per_2048_tile": round(seconds, 2),
            "inference_gpu_util_pct": gpu.mean(), "window": p.inference.window, "overlap": p.inference.overlap,
            "inference_batch_size": p.inference.batch_size}


def main() -> dict:
    import torch

    from landcover.config import load_params
    from landcover.model.normalization import NormStats
    from landcover.training.data import RING_SLOTS, BatchRing, TrainCrops, index_tiles
    from landcover.training.sources import StoreSource
    from landcover.trainstore.layout import PackedStore

    if not torch.cuda.is_available() and not DRYRUN:
        return c.emit("gpu", {"ratio": None, "target": "report only", "met": None, "skipped": True,
                              "reason": "no CUDA device on this machine"})
    device = "cpu" if DRYRUN else "cuda"
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    p = load_params(c.REPO / "params.yaml")
    t = p.train
    crop = 64 if DRYRUN else CROP
    store = PackedStore(str(gpu_store(p)))
    source = StoreSource(store, "train")
    norm = NormStats.from_dict(store.meta.norm)
    infos = index_tiles(source, crop, tuple(t.rare_classes), seed=0)
    steps, warmup = (8, 4) if DRYRUN else (200, 20)
    per_tile = max(1, (steps + warmup + 8) * t.batch_size // len(infos))
    dataset = TrainCrops(infos, source, crop, per_tile, t.rare_class_crop_share, t.season_dropout,
                         ring=BatchRing(RING_SLOTS))
    cores = os.cpu_count() or 1
    c.log(f"figure 6: {t.arch}, {steps} steps of batch {t.batch_size} x {crop} px on {device}; store {store.url}")
    per_core = per_core_rate(dataset, t.batch_size)
    c.log(f"  per core: {per_core:.0f} crops/s")
    ceiling = train_rate(p, dataset, norm, device, steps, warmup, 0, on_device=True)
    c.log(f"  ceiling (batches on the device): {ceiling['samples_per_s']} samples/s, GPU {ceiling['gpu_util_pct']} %")
    workers = max(1, min(cores - 1, math.ceil(1.25 * ceiling["samples_per_s"] / per_core)))
    fed = train_rate(p, dataset, norm, device, steps, warmup, workers, on_device=False)
    c.log(f"  fed by {workers} workers: {fed['samples_per_s']} samples/s, GPU {fed['gpu_util_pct']} %")
    result = {
        "ratio": round(fed["samples_per_s"] / ceiling["samples_per_s"], 3),
        "ratio_meaning": "training samples/s fed from the packed store / with batches already on the GPU",
        "target": "report only", "met": None, "dryrun_on_cpu": DRYRUN,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)",
        "arch": t.arch, "encoder": t.encoder, "crop_size": crop, "batch_size": t.batch_size,
        "precision": t.precision_gpu if device == "cuda" else t.precision_cpu,
        "loader_crops_per_s_per_core": round(per_core, 1), "loader_workers": workers, "cpu_count": cores,
        "train_samples_per_s": fed["samples_per_s"], "train_gpu_util_pct": fed["gpu_util_pct"],
        "train_samples_per_s_on_device": ceiling["samples_per_s"],
        "train_gpu_util_pct_on_device": ceiling["gpu_util_pct"],
        "workers_needed_at_ceiling": round(ceiling["samples_per_s"] / per_core, 2),
    }
    try:
        result |= inference(p, device)
    except ImportError as exc:  # e.g. a GPU machine handed only the store
        result["inference_skipped"] = f"{type(exc).__name__}: {exc}"
    return c.emit("gpu", result)


if __name__ == "__main__":
    main()
    sys.exit(0)
