"""Temperature scaling after training, cross-fitted on the validation crops and kept only where it
lowers the held-out ECE (`landcover.model.calibration.choose_temperature`).

The folds are whole validation cities (alternating in name order), so each half's ECE is measured on
landscapes its temperature was not fitted on, as the test split's cities will be; with one validation
city its tiles alternate, with one tile its crops, with one crop its pixels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from landcover.model.calibration import choose_temperature
from landcover.training.data import IGNORE_INDEX, ValCrops
from landcover.training.task import SegmentationTask

MAX_PIXELS = 2_000_000  # a regular subsample of the labelled validation pixels fits T as well as all


def crop_folds(val_ds: ValCrops) -> list[int]:
    """Fold (0 or 1) of every validation crop: alternating cities in name order, else alternating
    tiles of the one city, else alternating crops of the one tile (keys are `city/tile`)."""
    keys = [item[0] for item in val_ds.items]
    for unit in (lambda key: key.split("/")[0], lambda key: key):
        groups = sorted({unit(k) for k in keys})
        if len(groups) >= 2:
            return [groups.index(unit(k)) % 2 for k in keys]
    return [i % 2 for i in range(len(keys))]


@torch.no_grad()  # not inference_mode: the logits feed an autograd fit of T
def _validation_logits(task: SegmentationTask, val_ds: ValCrops, batch: int = 8
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, C) logits, (N,) targets and (N,) folds of every labelled validation pixel."""
    folds = crop_folds(val_ds)
    logits, targets, fold = [], [], []
    for start in range(0, len(val_ds), batch):
        items = list(range(start, min(start + batch, len(val_ds))))
        x, y = task.prepare(val_ds.__getitems__(items))
        out = task.network(x).float()
        keep = y != IGNORE_INDEX
        logits.append(out.permute(0, 2, 3, 1)[keep])
        targets.append(y[keep])
        fold.append(torch.tensor([folds[i] for i in items]).view(-1, 1, 1).expand_as(y)[keep])
    fold_all = torch.cat(fold)
    if len(val_ds) == 1:  # one crop: a regular split of its pixels
        fold_all = torch.arange(len(fold_all)) % 2
    return torch.cat(logits), torch.cat(targets), fold_all


def calibrate(task: SegmentationTask, val_ds: ValCrops) -> dict[str, Any]:
    """The shipped temperature and its held-out evidence (`TemperatureChoice.as_dict`)."""
    task.eval()
    logits, targets, fold = _validation_logits(task, val_ds)
    if len(targets) > MAX_PIXELS:
        pick = torch.from_numpy(np.linspace(0, len(targets) - 1, MAX_PIXELS).round().astype(np.int64))
        logits, targets, fold = logits[pick], targets[pick], fold[pick]
    return choose_temperature(logits, targets, fold).as_dict()
