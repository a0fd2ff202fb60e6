"""Confidence users can trust: temperature scaling fitted on the validation split, expected
calibration error (ECE) and the reliability diagram, and D4 test-time augmentation.

Temperature scaling (Guo et al. 2017) divides the logits by one scalar T fitted to minimise the
negative log-likelihood of held-out labels: it changes no prediction, only how sure the model
says it is. `choose_temperature` keeps it only where it helps: cross-fitted on two halves of the
validation pixels, each half scored with the T of the other, and T = 1 unless that held-out ECE
is lower than the uncalibrated one (docs/training.md says why). ECE bins pixels by their
top-class probability (15 equal bins) and averages |accuracy - confidence| weighted by the bin's
share; `CalibrationCounts` keeps only per-bin sums, so it streams over any number of tiles (the
same figure as torchmetrics' binned L1 calibration error, which keeps every pixel;
tests/test_season_aware.py checks they agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

BINS = 15
D4 = tuple((k, flip) for flip in (False, True) for k in range(4))


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, steps: int = 100) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T) on (N, C) logits and (N,) targets."""
    logits, targets = logits.detach().float().clone(), targets.detach().long()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


@dataclass
class CalibrationCounts:
    """Per-bin pixel count, summed top-class confidence and summed correctness."""

    count: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.float64))
    correct: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.float64))

    def update(self, top_probability: np.ndarray, is_correct: np.ndarray) -> None:
        p = np.asarray(top_probability, np.float64).ravel()
        c = np.asarray(is_correct, bool).ravel()
        bins = np.clip(np.ceil(p * BINS).astype(np.int64) - 1, 0, BINS - 1)  # (0, 1/15], (1/15, 2/15] ...
        self.count += np.bincount(bins, minlength=BINS)
        self.confidence += np.bincount(bins, weights=p, minlength=BINS)
        self.correct += np.bincount(bins, weights=c.astype(np.float64), minlength=BINS)

    def ece(self) -> float:
        n = self.count.sum()
        if n == 0:
            return float("nan")
        return float(np.abs(self.correct - self.confidence).sum() / n)

    def table(self) -> list[dict]:
        """The reliability diagram's rows: per bin, mean confidence, accuracy and pixel share."""
        n = max(int(self.count.sum()), 1)
        rows = []
        for b in range(BINS):
            k = int(self.count[b])
            rows.append({"bin_low": round(b / BINS, 4), "bin_high": round((b + 1) / BINS, 4),
                         "confidence": round(self.confidence[b] / k, 4) if k else None,
                         "accuracy": round(self.correct[b] / k, 4) if k else None, "share": round(k / n, 6)})
        return rows


def _score(counts: CalibrationCounts, logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> None:
    """Add the top-class probabilities of softmax(logits / T) and their correctness to `counts`."""
    top, pred = torch.softmax(logits.float() / temperature, dim=1).max(1)
    counts.update(top.numpy(), (pred == targets).numpy())


@dataclass(frozen=True)
class TemperatureChoice:
    """The temperature to ship and the held-out evidence it was chosen on."""

    temperature: float  # shipped: `fitted` when calibration is kept, else 1.0
    fitted: float  # fitted on every pixel
    folds: tuple[float, float]  # fitted on fold 0 and on fold 1
    ece_uncalibrated: float  # every pixel at T = 1 (no fit involved: held out by construction)
    ece_calibrated: float  # cross-fitted: each fold's pixels at the T fitted on the other fold
    kept: bool
    pixels: int

    def as_dict(self) -> dict[str, Any]:
        """The keys training logs (`calibration_<key>` in MLflow) and writes to its metrics."""
        return {"temperature": round(self.temperature, 4), "val_ece_uncalibrated": round(self.ece_uncalibrated, 4),
                "val_ece_calibrated": round(self.ece_calibrated, 4), "val_pixels": self.pixels, "kept": self.kept,
                "temperature_fitted": round(self.fitted, 4), "temperature_fold_0": round(self.folds[0], 4),
                "temperature_fold_1": round(self.folds[1], 4)}


def choose_temperature(logits: torch.Tensor, targets: torch.Tensor, fold: torch.Tensor) -> TemperatureChoice:
    """Cross-fitted temperature scaling of (N, C) logits and (N,) targets split by `fold` (0 or 1):
    T fitted on each fold scores the other, so the calibrated ECE is measured on pixels its T never
    saw. T fitted on all pixels ships only if that held-out ECE is below the uncalibrated ECE of
    the same pixels; otherwise T = 1 (a fit that does not generalise would only move confidence)."""
    logits, targets, fold = logits.detach().float(), targets.detach().long(), fold.detach().long()
    nan = float("nan")
    raw = CalibrationCounts()
    _score(raw, logits, targets, 1.0)
    halves = [fold == 0, fold == 1]
    if not all(h.any() for h in halves):  # nothing to hold out: no evidence that a fit helps
        return TemperatureChoice(1.0, nan, (nan, nan), raw.ece(), nan, False, len(targets))
    folds = (fit_temperature(logits[halves[0]], targets[halves[0]]),
             fit_temperature(logits[halves[1]], targets[halves[1]]))
    crossed = CalibrationCounts()
    for h, t_other in zip(halves, folds[::-1], strict=True):
        _score(crossed, logits[h], targets[h], t_other)
    fitted = fit_temperature(logits, targets)
    kept = crossed.ece() < raw.ece()
    return TemperatureChoice(fitted if kept else 1.0, fitted, folds, raw.ece(), crossed.ece(), kept, len(targets))


def d4(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def d4_inverse(y: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    y = y.flip(-1) if flip else y
    return torch.rot90(y, -k, dims=(-2, -1))


def probabilities(network: torch.nn.Module, x: torch.Tensor, temperature: float = 1.0, tta: bool = False
                  ) -> torch.Tensor:
    """(B, C, h, w) class probabilities of a normalised batch: softmax(logits / T), averaged in
    probability space over the eight D4 flips and rotations when `tta` (square windows)."""
    if not tta:
        return torch.softmax(network(x).float() / temperature, dim=1)
    total = None
    for k, flip in D4:
        p = d4_inverse(torch.softmax(network(d4(x, k, flip)).float() / temperature, dim=1), k, flip)
        total = p if total is None else total + p
    return total / len(D4)
