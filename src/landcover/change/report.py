"""The transition matrix as people read it: a CSV in km² and a heat map, plus gains and losses."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from landcover.classes import CLASSES
from landcover.io_utils import atomic_write_text
from landcover.transitions import gains_and_losses


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_matrix_csv(path: Path, matrix_km2: np.ndarray) -> None:
    """Rows: class before; columns: class after; cells km² (6 decimals, 1 m² resolution)."""
    rows = [["from \\ to (km2)", *[c.name for c in CLASSES], "total"]]
    for b in CLASSES:
        cells = [matrix_km2[b.code, a.code] for a in CLASSES]
        rows.append([b.name, *[f"{v:.6f}" for v in cells], f"{sum(cells):.6f}"])
    totals = [matrix_km2[1:, a.code].sum() for a in CLASSES]
    rows.append(["total", *[f"{v:.6f}" for v in totals], f"{matrix_km2.sum():.6f}"])
    atomic_write_text(path, _csv(rows))


def write_gains_csv(path: Path, matrix_km2: np.ndarray) -> None:
    rows = gains_and_losses(matrix_km2)
    keys = list(rows[0])
    atomic_write_text(path, _csv([keys, *[[r[k] if isinstance(r[k], int | str) else f"{r[k]:.6f}" for k in keys]
                                          for r in rows]]))


def write_matrix_png(path: Path, matrix_km2: np.ndarray, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from landcover.plots import _save

    m = matrix_km2[1:, 1:]
    names = [c.name for c in CLASSES]
    fig, ax = plt.subplots(figsize=(8.5, 7))
    shown = np.ma.masked_less_equal(m, 0)
    im = ax.imshow(shown, cmap="viridis", norm=LogNorm(vmin=max(shown.min(), 1e-6), vmax=max(shown.max(), 1e-5))
                   if shown.count() else None)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j] > 0:
                ax.text(j, i, f"{m[i, j]:.3g}", ha="center", va="center", fontsize=6,
                        color="black" if im.norm(m[i, j]) > 0.6 else "white")  # legible on any cell
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("after")
    ax.set_ylabel("before")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="km²")
    return _save(fig, path)
