"""Sliding-window prediction with smooth blending and flat memory, shared by evaluation and
batch inference.

The tile is processed in horizontal strips one window high. Windows overlap by `overlap` pixels
and are blended with a raised-cosine weight, so no seams appear; the raster is padded by
reflection at its edges so border pixels get full context. Only one strip of probabilities is in
memory at a time: finished rows are handed to a callback (which writes them or scores them)
and forgotten. Reading the next strip runs in a background thread while the model computes.

A pixel with no observation in any season (all 40 channels nodata) gets no prediction (code 0);
a pixel missing some seasons is predicted from the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from landcover.bands import NUM_CHANNELS, SEASONS
from landcover.dataset import DataContractError, TileRef, check_tile
from landcover.model.bundle import ModelBundle
from landcover.model.normalization import normalize

RowsCallback = Callable[[int, np.ndarray, np.ndarray], None]  # (row0, probs (C,n,W), valid (n,W))


def blend_weights(window: int, overlap: int) -> np.ndarray:
    """2-D raised-cosine weights: 1 in the core, falling smoothly to ~0 over `overlap` pixels."""
    ramp = np.ones(window, dtype=np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        edge = 0.5 - 0.5 * np.cos(np.pi * t)
        ramp[:overlap] = edge
        ramp[-overlap:] = edge[::-1]
    return np.maximum(np.outer(ramp, ramp), 1e-3)


def _starts(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def _pad(a: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    if not (top or bottom or left or right):
        return a
    h, w = a.shape[-2:]
    mode = "reflect" if h > 1 and w > 1 else "edge"
    return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(top, bottom), (left, right)], mode=mode)


class TileSource:
    """The 40-channel stack of one tile, read by row ranges (all four season files)."""

    def __init__(self, tile: TileRef, drop_season: str | None = None) -> None:
        self.tile = tile
        self.drop = SEASONS.index(drop_season) if drop_season else None
        check_tile(tile, need_label=False)  # bands, dtype and one grid, or an error naming the file
        self.datasets = []
        try:
            for s in SEASONS:
                self.datasets.append(rasterio.open(tile.season_path(s)))
        except rasterio.errors.RasterioError as exc:
            self.close()
            raise DataContractError(f"{tile.season_path(s)}: cannot open: {exc}") from exc
        first = self.datasets[0]
        self.height, self.width = first.shape
        self.profile = first.profile

    def read_rows(self, row0: int, row1: int) -> np.ndarray:
        out = np.empty((NUM_CHANNELS, row1 - row0, self.width), dtype=np.uint16)
        window = Window(0, row0, self.width, row1 - row0)
        for i, ds in enumerate(self.datasets):
            try:
                out[i * 10 : (i + 1) * 10] = ds.read(window=window)
            except rasterio.errors.RasterioError as exc:
                raise DataContractError(f"{ds.name}: cannot read rows {row0}-{row1}: {exc}") from exc
        if self.drop is not None:
            out[self.drop * 10 : (self.drop + 1) * 10] = 0
        return out

    def close(self) -> None:
        for ds in self.datasets:
            ds.close()

    def __enter__(self) -> TileSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class SlidingPredictor:
    bundle: ModelBundle
    window: int = 128
    overlap: int = 32
    batch_size: int = 8
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.window % 32:
            raise ValueError(f"inference.window {self.window} must be a multiple of 32")
        self.weights = blend_weights(self.window, self.overlap)
        self._w_t = torch.from_numpy(self.weights).to(self.device)
        self.bundle.network.to(self.device).eval()

    def _forward(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(normalize(batch, self.bundle.norm)).to(self.device)
        with torch.inference_mode():
            if str(self.device).startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = self.bundle.network(x)
            else:
                logits = self.bundle.network(x)
            return torch.softmax(logits.float(), dim=1)

    def _strips(self, src: TileSource) -> Iterator[tuple[int, np.ndarray]]:
        """Padded strips (40, window, W + 2m) with their start row in padded coordinates,
        the next one read in the background while the caller computes."""
        m, win = self.overlap, self.window
        h, w = src.height, src.width
        hp = max(h + 2 * m, win)
        starts = _starts(hp, win, win - m)

        def load(y: int) -> np.ndarray:
            r0, r1 = y - m, y - m + win  # original row range this strip covers
            a0, a1 = max(r0, 0), min(r1, h)
            rows = src.read_rows(a0, a1)
            right = max(win - (w + 2 * m), 0)
            return _pad(rows, a0 - r0, r1 - a1, m, m + right)

        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(load, starts[0])
            for k, y in enumerate(starts):
                strip = future.result()
                if k + 1 < len(starts):
                    future = pool.submit(load, starts[k + 1])
                yield y, strip

    def predict(self, src: TileSource, on_rows: RowsCallback) -> None:
        m, win = self.overlap, self.window
        h, w = src.height, src.width
        stride = win - m
        wp = max(w + 2 * m, win)
        xs = _starts(wp, win, stride)
        hp = max(h + 2 * m, win)
        ys = _starts(hp, win, stride)
        n_cls = 10
        acc = torch.zeros((n_cls, win, wp), device=self.device)
        wsum = torch.zeros((win, wp), device=self.device)
        valid_acc = np.zeros((win, wp), dtype=bool)
        for k, (y, strip) in enumerate(self._strips(src)):
            valid_acc |= (strip != 0).any(axis=0)
            for b in range(0, len(xs), self.batch_size):
                group = xs[b : b + self.batch_size]
                probs = self._forward(np.stack([strip[:, :, x : x + win] for x in group]))
                for j, x in enumerate(group):
                    acc[:, :, x : x + win] += probs[j] * self._w_t
                    wsum[:, x : x + win] += self._w_t
            y_next = ys[k + 1] if k + 1 < len(ys) else y + win
            done = y_next - y  # rows [y, y_next) are final
            lo, hi = max(y, m), min(y_next, m + h)  # keep rows inside the original raster
            if hi > lo:
                sl = slice(lo - y, hi - y)
                probs_rows = (acc[:, sl, m : m + w] / wsum[sl, m : m + w]).cpu().numpy()
                on_rows(lo - m, probs_rows, valid_acc[sl, m : m + w].copy())
            # shift the unfinished rows to the top of the buffers
            acc = torch.roll(acc, -done, dims=1)
            acc[:, win - done :] = 0
            wsum = torch.roll(wsum, -done, dims=0)
            wsum[win - done :] = 0
            valid_acc = np.roll(valid_acc, -done, axis=0)
            valid_acc[win - done :] = False


def predict_tile_classes(predictor: SlidingPredictor, tile: TileRef, drop_season: str | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Whole-tile class codes (0 = nodata) and confidence (0..100): for evaluation and tests,
    where a tile fits in memory as uint8."""
    with TileSource(tile, drop_season) as src:
        codes = np.zeros((src.height, src.width), np.uint8)
        conf = np.zeros((src.height, src.width), np.uint8)

        def keep(row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
            n = probs.shape[1]
            codes[row0 : row0 + n] = np.where(valid, probs.argmax(0) + 1, 0)
            conf[row0 : row0 + n] = np.where(valid, np.round(probs.max(0) * 100), 0)

        predictor.predict(src, keep)
    return codes, conf
