"""Per-channel normalisation statistics, computed on the training split only."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from landcover.bands import NUM_CHANNELS, REFLECTANCE_SCALE, SEASONS, channel_names
from landcover.dataset import DataContractError, TileRef, open_raster
from landcover.io_utils import atomic_write_json


@dataclass(frozen=True)
class NormStats:
    mean: np.ndarray  # (40,) reflectance (0..1 scale)
    std: np.ndarray   # (40,)

    def to_dict(self) -> dict:
        return {
            "channels": channel_names(),
            "scale": REFLECTANCE_SCALE,
            "mean": [round(float(x), 6) for x in self.mean],
            "std": [round(float(x), 6) for x in self.std],
        }

    @classmethod
    def from_dict(cls, d: dict) -> NormStats:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> NormStats:
        return cls.from_dict(json.loads(Path(path).read_text()))


def compute_norm_stats(tiles: Iterable[TileRef], max_pixels_per_tile: int = 65536) -> NormStats:
    """Streaming mean/std of valid (non-nodata) reflectances per band and season.

    Reads block by block and keeps running sums, so memory does not grow with the tile count.
    A regular pixel subsample per block bounds the work on large tiles."""
    s1 = np.zeros(NUM_CHANNELS, np.float64)
    s2 = np.zeros(NUM_CHANNELS, np.float64)
    n = np.zeros(NUM_CHANNELS, np.float64)
    for tile in tiles:
        for si, season in enumerate(SEASONS):
            with open_raster(tile.season_path(season)) as src:
                blocks = list(src.block_windows(1))
                step = max(1, int(np.sqrt(src.width * src.height / max_pixels_per_tile)))
                for _, window in blocks:
                    try:
                        data = src.read(window=window)
                    except rasterio.errors.RasterioError as exc:
                        raise DataContractError(f"{src.name}: cannot decode {window}: {exc}") from exc
                    data = data[:, ::step, ::step].reshape(src.count, -1)
                    data = data.astype(np.float64) / REFLECTANCE_SCALE
                    valid = data > 0
                    sl = slice(si * src.count, (si + 1) * src.count)
                    s1[sl] += np.where(valid, data, 0).sum(1)
                    s2[sl] += np.where(valid, data**2, 0).sum(1)
                    n[sl] += valid.sum(1)
    if (n == 0).any():
        raise ValueError("normalisation: no valid pixels in some channels of the training split")
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 1e-12))
    return NormStats(mean.astype(np.float32), std.astype(np.float32))


def normalize(dn: np.ndarray, stats: NormStats, out: np.ndarray | None = None) -> np.ndarray:
    """(..., 40, H, W) raw DN (or reflectance x 10000) -> float32 z-scores; nodata (0) -> 0,
    the channel mean, so a missing season looks like 'no information' to the network.

    In place on one float32 buffer (the same operations, so the same bits, as the textbook
    `(dn / scale - mean) / std`): inference and the training loader call it on every batch.
    `out` (float32, dn's shape) receives the result, e.g. one window of a batch being filled."""
    shape = (NUM_CHANNELS, 1, 1)
    if out is None:
        z = dn.astype(np.float32)
    else:
        z = out
        np.copyto(z, dn)
    z /= REFLECTANCE_SCALE
    z -= stats.mean.reshape(shape)
    z /= stats.std.reshape(shape)
    # nodata: 0 for the uint16 contract; also NaN or negative values from float input (pyfunc)
    np.copyto(z, 0.0, where=~(dn > 0))
    return z
