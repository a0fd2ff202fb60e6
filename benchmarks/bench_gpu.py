"""Figure 6, GPU (skipped without a CUDA device): training samples per second and GPU
utilisation, and batch-inference km2 per second, for the default configuration of params.yaml
(architecture, crop and batch size, bf16 mixed precision as training uses on CUDA).

Training runs the project's Lightning task (`SegmentationTask`, AdamW + OneCycle, CE + Dice,
metrics) for a fixed number of steps, twice: fed by the real input pipeline (`TrainCrops` through a
DataLoader with one worker per core, pinned memory) and fed from tensors already on the GPU (the
compute ceiling). Their ratio says whether the CPU workers keep the GPU busy. GPU utilisation is
sampled with nvidia-smi while each arm runs. Inference runs `TilePredictor` on the 2048 x 2048
tile on the GPU. BENCH_GPU_DRYRUN=1 runs the same code on the CPU with a few steps (a check of the
script on machines without a GPU; its numbers mean nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import _common as c

DRYRUN = os.environ.get("BENCH_GPU_DRYRUN", "") not in ("", "0")


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


def train_rate(p, dataset, device: str, steps: int, warmup: int, workers: int, on_device: bool) -> dict:
    """Samples/s of `steps` Lightning training steps after `warmup` steps."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, Dataset

    from landcover.training.task import SegmentationTask

    t = p.train
    task = SegmentationTask(t.arch, t.encoder, t.encoder_depth, None, t.lr, t.weight_decay, t.dice_weight,
                            list(t.class_weights), 1)
    total = steps + warmup
    if on_device:  # the compute ceiling: the same batches, already on the GPU, no loader work
        x0, y0 = next(iter(DataLoader(dataset, batch_size=t.batch_size, shuffle=True)))
        x0, y0 = x0.to(device), y0.to(device)

        class OnDevice(Dataset):
            def __len__(self) -> int:
                return total

            def __getitem__(self, i: int):
                return x0, y0

        loader = DataLoader(OnDevice(), batch_size=None, shuffle=False, num_workers=0)
    else:
        loader = DataLoader(dataset, batch_size=t.batch_size, shuffle=True, drop_last=True,
                            num_workers=workers, pin_memory=device == "cuda", persistent_workers=workers > 0)

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
                         limit_val_batches=0, callbacks=[Clock()])
    with GpuSampler() as gpu:
        trainer.fit(task, train_dataloaders=loader)
    seconds = marks["end"] - marks["start"]
    return {"samples_per_s": round(steps * t.batch_size / seconds, 1), "gpu_util_pct": gpu.mean(),
            "steps": steps, "seconds": round(seconds, 2)}


def main() -> dict:
    import numpy as np
    import torch

    if not torch.cuda.is_available() and not DRYRUN:
        return c.emit("gpu", {"ratio": None, "target": "report only", "met": None, "skipped": True,
                              "reason": "no CUDA device on this machine"})
    device = "cpu" if DRYRUN else "cuda"
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    from landcover.inference.stage import TilePredictor
    from landcover.model.normalization import NormStats
    from landcover.training.data import TrainCrops, index_tiles

    bundle, p = c.default_bundle()
    t = p.train
    root = c.synth_dataset("train4x1024", 1024, cities=4, tiles_per_city=1, seed=11)
    infos = index_tiles(c.tiles_of(root), t.crop_size, tuple(t.rare_classes), seed=0)
    norm = NormStats(np.full(40, 0.15, np.float32), np.full(40, 0.08, np.float32))
    steps, warmup = (8, 4) if DRYRUN else (200, 20)
    dataset = TrainCrops(infos, norm, t.crop_size, max(1, (steps + warmup + 5) * t.batch_size // len(infos)),
                         t.rare_class_crop_share, t.season_dropout)
    workers = os.cpu_count() or 1
    c.log(f"figure 6: training {steps} steps of batch {t.batch_size} x {t.crop_size} px on {device}")
    fed = train_rate(p, dataset, device, steps, warmup, workers, on_device=False)
    ceiling = train_rate(p, dataset, device, steps, warmup, workers, on_device=True)

    tile = c.tiles_of(c.tile_2048())[0]
    out_dir = c.RESULTS / "work" / "gpu_inference"
    worker = TilePredictor(bundle, c.model_ref(), p, out_dir, device)
    runs = []
    with GpuSampler() as gpu:
        for _ in range(1 if DRYRUN else 3):
            shutil.rmtree(out_dir, ignore_errors=True)
            t0 = time.perf_counter()
            outcome = worker(tile)
            runs.append((time.perf_counter() - t0, outcome.km2))
    shutil.rmtree(out_dir, ignore_errors=True)
    seconds = c.median([r[0] for r in runs])
    km2 = runs[0][1]
    return c.emit("gpu", {
        "ratio": round(fed["samples_per_s"] / ceiling["samples_per_s"], 3),
        "ratio_meaning": "training samples/s with the real input pipeline / with batches already on the GPU",
        "target": "report only", "met": None, "dryrun_on_cpu": DRYRUN,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)",
        "train_samples_per_s": fed["samples_per_s"], "train_gpu_util_pct": fed["gpu_util_pct"],
        "train_samples_per_s_on_device": ceiling["samples_per_s"],
        "train_gpu_util_pct_on_device": ceiling["gpu_util_pct"],
        "loader_workers": workers, "batch_size": t.batch_size, "crop_size": t.crop_size,
        "precision": t.precision_gpu if device == "cuda" else t.precision_cpu,
        "inference_km2_per_s": round(km2 / seconds, 2), "inference_s_per_2048_tile": round(seconds, 2),
        "inference_gpu_util_pct": gpu.mean(),
        "window": p.inference.window, "overlap": p.inference.overlap, "inference_batch_size": p.inference.batch_size,
    })


if __name__ == "__main__":
    main()
    sys.exit(0)
