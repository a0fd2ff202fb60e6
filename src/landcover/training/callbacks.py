"""Callbacks that turn training into files DVC and MLflow show: curves CSV, figures."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from landcover.io_utils import atomic_path, atomic_write_json

CURVE_KEYS = ("train_loss_epoch", "val_loss", "train_miou", "val_miou", "val_accuracy")


class CurvesCSV(pl.Callback):
    """One row per epoch (DVC plots), rewritten atomically so a killed run leaves a valid file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # resumed: keep earlier epochs (the loop's epoch is restored by now; at on_fit_start it is still 0)
        if self.path.exists() and trainer.ckpt_path:
            with self.path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < trainer.current_epoch]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key in CURVE_KEYS:
            row[key] = round(float(m[key]), 6) if key in m else ""
        opt = trainer.optimizers[0] if trainer.optimizers else None
        row["lr"] = opt.param_groups[0]["lr"] if opt else ""
        self.rows.append(row)
        shown = ", ".join(f"{k} {row[k]:.4f}" for k in CURVE_KEYS if row[k] != "")
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {shown}", flush=True)
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(self.rows)


class LastCheckpoint(pl.Callback):
    """`last.ckpt` after every epoch, replaced atomically: what a killed run resumes from.

    ModelCheckpoint's `save_last` only writes when its monitored metric improved (in this
    Lightning version), so after a kill a run resumed from the best epoch, not the last one, and
    repeated epochs; found when the season-aware model's final epoch did not improve."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        # every rank calls it; the strategy writes on rank zero only. weights_only=False: the full resume
        # state (optimizer, loops, callbacks); unset, Lightning says it defaulted to that at every epoch.
        # Loading it stays weights-only: the state is tensors and plain containers.
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            tmp.replace(self.path)


class RankReport(pl.Callback):
    """`rank<N>.json` beside the checkpoints: per epoch, how many crops this rank drew, a digest of
    which (index order of its share), and the validation mIoU it saw. Under DDP it shows at a glance
    that ranks split the epoch without overlap and agree on the synchronised metrics."""

    def __init__(self, folder: Path, sampler) -> None:
        self.folder, self.sampler, self.epochs = Path(folder), sampler, []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = self.folder / f"rank{trainer.global_rank}.json"
        if path.exists() and trainer.ckpt_path:  # resumed: keep earlier epochs
            self.epochs = [e for e in json.loads(path.read_text())["epochs"] if e["epoch"] < trainer.current_epoch]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        share = np.asarray(self.sampler._share(), dtype=np.int64)
        m = trainer.callback_metrics
        self.epochs.append({"epoch": trainer.current_epoch, "crops": int(len(share)),
                            "digest": hashlib.sha256(share.tobytes()).hexdigest()[:16],
                            "val_miou": round(float(m["val_miou"]), 6) if "val_miou" in m else None})
        atomic_write_json(self.folder / f"rank{trainer.global_rank}.json",
                          {"rank": trainer.global_rank, "world_size": trainer.world_size, "epochs": self.epochs})


class SameResume(pl.Callback):
    """Every rank must make the same resume decision, or they run different epochs and hang. Each
    decides from `resume.json` and `last.ckpt` in the checkpoint folder, so that folder must be
    shared by every node; a rank that sees otherwise stops them all with the reason."""

    def __init__(self, resumed: bool, folder: Path) -> None:
        self.resumed, self.folder = resumed, Path(folder)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size < 2:
            return
        import torch

        flags = trainer.strategy.all_gather(torch.tensor([int(self.resumed)], device=pl_module.device))
        if int(flags.min()) != int(flags.max()):
            from landcover.errors import LandcoverError

            raise LandcoverError(f"{self.folder}: some ranks found a run to resume there and some did not; the "
                                 "checkpoint folder must be one folder shared by every node")
