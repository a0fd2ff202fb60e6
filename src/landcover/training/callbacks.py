"""Callbacks that turn training into files DVC and MLflow show: curves CSV, figures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytorch_lightning as pl

from landcover.io_utils import atomic_path

CURVE_KEYS = ("train_loss_epoch", "val_loss", "train_miou", "val_miou", "val_accuracy")


class CurvesCSV(pl.Callback):
    """One row per epoch (DVC plots), rewritten atomically so a killed run leaves a valid file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.path.exists() and trainer.ckpt_path:  # resumed: keep earlier epochs
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
        trainer.save_checkpoint(tmp)  # every rank calls it; the strategy writes on rank zero only
        if trainer.is_global_zero:
            tmp.replace(self.path)
