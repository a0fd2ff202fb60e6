"""Scores from a confusion matrix accumulated over all labelled pixels (each pixel counted once).

Training and validation use torchmetrics; whole-tile evaluation accumulates counts tile by tile
with numpy (bincount) and derives every figure from the one matrix here, so no figure can
disagree with the confusion matrix it is reported beside."""

from __future__ import annotations

import numpy as np

from landcover.classes import NUM_CLASSES


def confusion_counts(pred: np.ndarray, target: np.ndarray, ignore_index: int = 255,
                     num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(C, C) counts, rows = reference, columns = prediction; class indices 0..C-1."""
    keep = target != ignore_index
    t = target[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray) -> dict:
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    ref = cm.sum(1)
    pred = cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (ref + pred - tp)
        precision = tp / pred
        recall = tp / ref
        f1 = 2 * tp / (ref + pred)
    present = ref > 0  # mIoU over classes present in the reference
    return {
        "miou": float(np.nanmean(np.where(present, iou, np.nan))) if present.any() else 0.0,
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "iou": np.nan_to_num(iou).tolist(),
        "precision": np.nan_to_num(precision).tolist(),
        "recall": np.nan_to_num(recall).tolist(),
        "f1": np.nan_to_num(f1).tolist(),
        "pixels": int(cm.sum()),
    }
