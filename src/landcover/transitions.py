"""Transition codes, the confidence-gated change mask and the area matrix: pure array logic.

A transition is coded `from * 16 + to` (land cover codes 1..10), so a uint8 holds every pair and
0 stays nodata. A pixel counts as changed only when the class differs and both maps are sure of
it: a map's own uncertainty is not change.
"""

from __future__ import annotations

import numpy as np

from landcover.classes import CLASSES

BASE = 16
NO_CHANGE, CHANGED, UNCERTAIN = 1, 2, 3  # change mask values; 0 = nodata in either map
MASK_NAMES = {NO_CHANGE: "no change", CHANGED: "change", UNCERTAIN: "class differs, below the confidence threshold"}
MASK_COLOURS = {0: (0, 0, 0, 0), NO_CHANGE: (225, 225, 225, 255), CHANGED: (215, 25, 28, 255),
                UNCERTAIN: (253, 174, 97, 255)}
N = len(CLASSES) + 1  # matrix rows/columns indexed by class code (0 unused)


def transition_codes(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    valid = (before > 0) & (after > 0)
    return np.where(valid, before.astype(np.uint16) * BASE + after, 0).astype(np.uint8)


def change_mask(before: np.ndarray, after: np.ndarray, conf_before: np.ndarray, conf_after: np.ndarray,
                min_confidence: int) -> np.ndarray:
    valid = (before > 0) & (after > 0)
    differs = before != after
    sure = (conf_before >= min_confidence) & (conf_after >= min_confidence)
    mask = np.where(differs & sure, CHANGED, np.where(differs, UNCERTAIN, NO_CHANGE))
    return np.where(valid, mask, 0).astype(np.uint8)


def pixel_matrix(before: np.ndarray, after: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """(N, N) pixel counts of `counted` pixels by (from, to) class."""
    b, a = before[counted].astype(np.int64), after[counted].astype(np.int64)
    return np.bincount(b * N + a, minlength=N * N).reshape(N, N)


def gains_and_losses(matrix_km2: np.ndarray) -> list[dict]:
    """Per class: area before and after, gross gain and loss, net change (km²)."""
    rows = []
    for c in CLASSES:
        before, after = matrix_km2[c.code, 1:].sum(), matrix_km2[1:, c.code].sum()
        stay = matrix_km2[c.code, c.code]
        rows.append({"code": c.code, "class": c.name, "before_km2": before, "after_km2": after,
                     "gain_km2": after - stay, "loss_km2": before - stay, "net_km2": after - before})
    return rows


def transition_colormap() -> dict[int, tuple[int, int, int, int]]:
    """Unchanged pixels pale grey; a change takes the colour of the class it became."""
    cmap = {i: (0, 0, 0, 0) for i in range(256)}
    for b in CLASSES:
        for a in CLASSES:
            cmap[b.code * BASE + a.code] = (225, 225, 225, 255) if a.code == b.code else (*a.rgb, 255)
    return cmap


def transition_names() -> dict[int, str]:
    return {b.code * BASE + a.code: (b.name if a.code == b.code else f"{b.name} -> {a.name}")
            for b in CLASSES for a in CLASSES}
