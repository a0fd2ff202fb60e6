"""The Lightning task: network, loss and metrics (torchgeo's SemanticSegmentationTask shape)."""

from __future__ import annotations

import pytorch_lightning as pl
import segmentation_models_pytorch as smp
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from landcover.classes import CLASS_NAMES, NUM_CLASSES
from landcover.model.network import build_network, freeze_unused
from landcover.training.batch import prepare
from landcover.training.data import IGNORE_INDEX


def make_metrics() -> MetricCollection:
    """Each pixel counted once: metrics accumulate confusion counts over the epoch."""
    kw = dict(num_classes=NUM_CLASSES, ignore_index=IGNORE_INDEX)
    return MetricCollection({
        "miou": MulticlassJaccardIndex(average="macro", **kw),
        "iou": MulticlassJaccardIndex(average="none", **kw),
        "f1": MulticlassF1Score(average="none", **kw),
        "accuracy": MulticlassAccuracy(average="micro", **kw),
    })


class SegmentationTask(pl.LightningModule):
    def __init__(self, arch: str = "Unet", encoder: str = "resnet18", encoder_depth: int = 4,
                 encoder_weights: str | None = None, lr: float = 2e-3, weight_decay: float = 1e-4,
                 dice_weight: float = 0.5, class_weights: list[float] | None = None,
                 epochs: int = 10, norm_mean: list[float] | None = None, norm_std: list[float] | None = None,
                 freeze_encoder_epochs: int = 0, encoder_lr_multiplier: float = 1.0, weights=None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["weights"])
        self.network = build_network(arch, encoder, encoder_depth, encoder_weights, weights)
        self.frozen = freeze_unused(self.network)  # DDP needs every trained parameter used
        # the fine-tuning recipe: these encoder parameters are frozen for the first epochs, then trained
        self.encoder_trainable = [p for p in self.network.encoder.parameters() if p.requires_grad]
        # the loader ships raw uint16 crops; normalisation happens here, on the training device
        self.register_buffer("norm_mean", torch.tensor(norm_mean or [0.0] * 40, dtype=torch.float32), persistent=False)
        self.register_buffer("norm_std", torch.tensor(norm_std or [1.0] * 40, dtype=torch.float32), persistent=False)
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.ce = nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_INDEX)
        self.dice = smp.losses.DiceLoss("multiclass", ignore_index=IGNORE_INDEX)
        metrics = make_metrics()
        self.train_metrics = metrics.clone(prefix="train_")
        self.val_metrics = metrics.clone(prefix="val_")
        self.val_confusion = MulticlassConfusionMatrix(NUM_CLASSES, ignore_index=IGNORE_INDEX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def prepare(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw uint16 crops, uint8 labels, D4) -> (normalised float32 input, int64 targets)."""
        return prepare(batch, self.norm_mean, self.norm_std)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.prepare(batch)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = self.ce(logits, y)
        if self.hparams.dice_weight > 0 and (y != IGNORE_INDEX).any():
            loss = loss + self.hparams.dice_weight * self.dice(logits, y)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        self.train_metrics.update(logits.argmax(1), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_collection(self.train_metrics)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", self._loss(logits, y), on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        pred = logits.argmax(1)
        self.val_metrics.update(pred, y)
        self.val_confusion.update(pred, y)

    def on_validation_epoch_end(self) -> None:
        self._log_collection(self.val_metrics)
        self.last_val_confusion = self.val_confusion.compute().cpu().numpy()
        self.val_confusion.reset()

    def _log_collection(self, collection: MetricCollection) -> None:
        values = collection.compute()
        prefix = collection.prefix
        for key, value in values.items():
            if value.ndim == 0:
                self.log(key, value, prog_bar=key.endswith("miou"), sync_dist=True)
            else:  # per-class figures
                name = key[len(prefix):]
                for i, v in enumerate(value):
                    self.log(f"{prefix}{name}_{CLASS_NAMES[i].replace(' ', '_')}", v, sync_dist=True)
        collection.reset()

    def encoder_frozen(self, epoch: int) -> bool:
        return epoch < self.hparams.freeze_encoder_epochs

    def on_train_epoch_start(self) -> None:
        """Freeze the encoder (weights and BatchNorm statistics) while the recipe says so, then unfreeze."""
        frozen = self.encoder_frozen(self.current_epoch)
        for p in self.encoder_trainable:
            p.requires_grad_(not frozen)
        self.network.encoder.train(not frozen)

    def configure_optimizers(self):
        """AdamW with two parameter groups: the encoder at `lr x encoder_lr_multiplier` (pretrained
        features are moved less than the decoder learns), the rest at `lr`; one-cycle schedule."""
        lr, mult = self.hparams.lr, self.hparams.encoder_lr_multiplier
        encoder_ids = {id(p) for p in self.network.encoder.parameters()}
        groups = [{"params": [p for p in self.parameters() if id(p) in encoder_ids], "lr": lr * mult},
                  {"params": [p for p in self.parameters() if id(p) not in encoder_ids], "lr": lr}]
        opt = torch.optim.AdamW(groups, lr=lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[lr * mult, lr], total_steps=self.trainer.estimated_stepping_batches, pct_start=0.2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
