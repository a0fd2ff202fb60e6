"""Temperature scaling after training, on the validation crops the early stopping already used."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from landcover.model.calibration import CalibrationCounts, fit_temperature
from landcover.training.data import IGNORE_INDEX
from landcover.training.task import SegmentationTask

MAX_PIXELS = 2_000_000  # a regular subsample of the labelled validation pixels fits T as well as all


@torch.no_grad()  # not inference_mode: the logits feed an autograd fit of T
def _validation_logits(task: SegmentationTask, val_ds: Dataset, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    logits, targets = [], []
    for start in range(0, len(val_ds), batch):
        x, y = task.prepare(val_ds.__getitems__(list(range(start, min(start + batch, len(val_ds))))))
        out = task.network(x).float()
        keep = y != IGNORE_INDEX
        logits.append(out.permute(0, 2, 3, 1)[keep])
        targets.append(y[keep])
    return torch.cat(logits), torch.cat(targets)


def _ece(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> float:
    probs = torch.softmax(logits / temperature, dim=1)
    top, pred = probs.max(1)
    counts = CalibrationCounts()
    counts.update(top.numpy(), (pred == targets).numpy())
    return counts.ece()


def calibrate(task: SegmentationTask, val_ds: Dataset) -> dict[str, float]:
    """{"temperature", "val_ece_uncalibrated", "val_ece_calibrated", "val_pixels"} of the shipped weights."""
    task.eval()
    logits, targets = _validation_logits(task, val_ds)
    if len(targets) > MAX_PIXELS:
        pick = torch.from_numpy(np.linspace(0, len(targets) - 1, MAX_PIXELS).round().astype(np.int64))
        logits, targets = logits[pick], targets[pick]
    if len(targets) == 0:
        return {"temperature": 1.0, "val_ece_uncalibrated": float("nan"), "val_ece_calibrated": float("nan"),
                "val_pixels": 0}
    temperature = fit_temperature(logits, targets)
    return {"temperature": round(temperature, 4), "val_ece_uncalibrated": round(_ece(logits, targets, 1.0), 4),
            "val_ece_calibrated": round(_ece(logits, targets, temperature), 4), "val_pixels": int(len(targets))}
