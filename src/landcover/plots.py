"""Figures people would rather see than read: confusion matrices, per-class bars, overlays."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from landcover.bands import NUM_BANDS, RGB_BAND_INDICES, SEASONS  # noqa: E402
from landcover.classes import CLASS_NAMES, CLASSES  # noqa: E402
from landcover.io_utils import atomic_path  # noqa: E402

LABEL_CMAP = ListedColormap(["#000000"] + [c.colour for c in CLASSES])


def _save(fig, path: Path) -> Path:
    with atomic_path(Path(path), suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def confusion_matrix_figure(cm: np.ndarray, path: Path, title: str = "Confusion matrix",
                            names: list[str] | None = None, xlabel: str = "predicted", ylabel: str = "reference",
                            colour_label: str = "share of reference pixels") -> Path:
    """Row-normalised colours (recall, for rows = reference), the shares in cells."""
    cm = np.asarray(cm, dtype=np.float64)
    names = list(names or CLASS_NAMES)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = max(6.0, 0.6 * len(names) + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label=colour_label)
    ax.set_title(title)
    return _save(fig, path)


def per_class_bars(values: dict[str, float], path: Path, title: str, ylabel: str = "IoU") -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(values)
    colours = [c.colour for c in CLASSES if c.name in values] or None
    ax.bar(names, [values[n] for n in names], color=colours, edgecolor="black")
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
    for lbl in ax.get_xticklabels():
        lbl.set_ha("right")
    return _save(fig, path)


def rgb(stack: np.ndarray, season: str = "summer") -> np.ndarray:
    """True-colour image of one season from a (40, H, W) reflectance x 10000 stack."""
    s = SEASONS.index(season) * NUM_BANDS
    return true_colour(np.stack([stack[s + b] for b in RGB_BAND_INDICES], axis=-1))


def true_colour(rgb_dn: np.ndarray) -> np.ndarray:
    """(..., 3) red, green, blue reflectance x 10000 -> display values 0..1 (0.3 reflectance is white)."""
    return np.clip(rgb_dn.astype(np.float32) / 3000.0, 0, 1) ** (1 / 1.5)


def overlays_figure(samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path) -> Path:
    """Rows of (summer RGB, reference, prediction); labels and predictions as codes 0..10."""
    n = len(samples)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for row, (stack, label, pred) in zip(axes, samples, strict=True):
        row[0].imshow(rgb(stack))
        row[1].imshow(label, cmap=LABEL_CMAP, vmin=0, vmax=10, interpolation="nearest")
        row[2].imshow(pred, cmap=LABEL_CMAP, vmin=0, vmax=10, interpolation="nearest")
        for ax, t in zip(row, ("summer RGB", "reference", "prediction"), strict=True):
            ax.set_title(t)
            ax.axis("off")
    return _save(fig, path)


def reliability_figure(states: dict, path: Path) -> Path:
    """Reliability diagram: accuracy against top-class confidence per bin, one line per state
    (for example uncalibrated and calibrated; `states` maps a name to a CalibrationCounts), the
    diagonal being perfect calibration, the pixel share of each bin as bars below."""
    fig, (ax, ax_share) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfect")
    width = 1 / 15
    for k, (name, counts) in enumerate(states.items()):
        rows = [r for r in counts.table() if r["share"]]
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o",
                label=f"{name} (ECE {counts.ece():.3f})")
        ax_share.bar([r["bin_low"] + width * (0.25 + 0.5 * k) for r in rows], [r["share"] for r in rows],
                     width=width / 2, label=name)
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Reliability of the top-class probability")
    ax.legend(loc="upper left", fontsize=8)
    ax_share.set_xlabel("top-class probability")
    ax_share.set_ylabel("share of pixels")
    return _save(fig, path)


def quicklook_figure(panels: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Side by side: the summer composite (when given), land cover, fuel and confidence, each with
    its legend: what a reviewer looks at before reading any number."""
    from matplotlib.colors import BoundaryNorm
    from matplotlib.patches import Patch

    from landcover.fuel import FBFM40

    names = list(panels)
    height, width = next(iter(panels.values())).shape[:2]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.2 * height / width + 1.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        data = panels[name]
        ax.set_axis_off()
        ax.set_title(name)
        if name == "summer RGB":
            ax.imshow(data, interpolation="nearest")
        elif name in ("land cover", "reference"):
            ax.imshow(np.ma.masked_equal(data, 0), cmap=LABEL_CMAP, vmin=0, vmax=len(CLASSES), interpolation="nearest")
            present = set(np.unique(data)) - {0}
            ax.legend(handles=[Patch(color=c.colour, label=c.name) for c in CLASSES if c.code in present],
                      loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=7, frameon=False)
        elif name == "fuel":
            codes = sorted(set(np.unique(data)) - {0})
            index = np.zeros(256, np.uint8)
            index[codes] = np.arange(1, len(codes) + 1)
            cmap = ListedColormap(["#000000"] + [FBFM40[c][2] for c in codes])
            ax.imshow(np.ma.masked_equal(index[data], 0), cmap=cmap, norm=BoundaryNorm(np.arange(len(codes) + 2) - 0.5,
                      len(codes) + 1), interpolation="nearest")
            ax.legend(handles=[Patch(color=FBFM40[c][2], label=f"{FBFM40[c][0]} ({c})") for c in codes],
                      loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=7, frameon=False)
        else:  # confidence, percent
            im = ax.imshow(np.ma.masked_equal(data, 0), cmap="RdYlGn", vmin=0, vmax=100, interpolation="nearest")
            fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.05, pad=0.04, label="percent")
    fig.suptitle(title)
    return _save(fig, path)
