"""Sliding-window prediction with smooth blending and flat memory, shared by evaluation and
batch inference.

The tile is processed in horizontal strips one window high. Windows overlap by `overlap` pixels
and are blended with a raised-cosine weight, so no seams appear; the raster is padded by
reflection at its edges so border pixels get full context. Only one strip of probabilities is in
memory at a time: finished rows are handed to a callback (which writes them or scores them)
and forgotten.

The main thread only runs the network; two threads beside it do everything else. The reader reads
each strip's new rows (every file block is decoded once: reads are split at block-row boundaries
and GDAL's block cache is sized to one block row of the tile's files; the first strip, which the
model waits for, is decoded one thread per file), cuts the windows into batches and normalises
them. The blender accumulates the class probabilities, weighted on the device, with in-place numpy
adds (hundreds of tiny torch ops per tile would each pay a thread-pool round trip on CPU) and hands
finished rows to the caller's callback, which therefore runs in the blender thread. On a CPU
the work beside the model fills the gaps of torch's thread pool instead of lengthening the main
thread's path (docs/performance.md, figure 1).

A pixel with no observation in any season (all 40 channels nodata) gets no prediction (code 0);
a pixel missing some seasons is predicted from the others.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from landcover.bands import NUM_BANDS, NUM_CHANNELS, SEASONS
from landcover.classes import NUM_CLASSES
from landcover.dataset import DataContractError, TileRef, check_tile
from landcover.maps.gdal_cache import gdal_cache_budget
from landcover.model.bundle import ModelBundle
from landcover.model.calibration import probabilities
from landcover.model.normalization import normalize
from landcover.parallel import lower_thread_priority

RowsCallback = Callable[[int, np.ndarray, np.ndarray], None]  # (row0, probs (C,n,W), valid (n,W))

PREFETCH_BATCHES = 2  # normalised batches the reader may have ready ahead of the model
BLEND_QUEUE = 2  # batches of probabilities the model may have ready ahead of the blending
EMIT_PIXELS = 96 * 2048  # finished rows go to the callback in parts of about this many pixels


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


def _index_map(n: int, before: int, padded: int, mode: str) -> np.ndarray:
    """Padded index -> original index (numpy's reflect/edge padding of 0..n-1)."""
    return np.pad(np.arange(n), (before, padded - n - before), mode=mode)


class TileSource:
    """The 40-channel stack of one tile, read by row ranges (all four season files)."""

    def __init__(self, tile: TileRef, drop_season: str | tuple[str, ...] | None = None) -> None:
        """`drop_season`: one season or several read as nodata (robustness to missing mosaics)."""
        self.tile = tile
        dropped = (drop_season,) if isinstance(drop_season, str) else tuple(drop_season or ())
        self.drop = {SEASONS.index(s) for s in dropped}
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
        self.block_rows = max(1, min(first.block_shapes[0][0], self.height))

    def block_row_bytes(self) -> int:
        """Decoded size of one block row of every file read: what GDAL must cache so that each
        block is decoded once while rows are read top to bottom."""
        total = 0
        for i, ds in enumerate(self.datasets):
            if i in self.drop:
                continue
            bh, bw = ds.block_shapes[0]
            total += ds.count * math.ceil(self.width / bw) * bw * min(bh, self.height) * 2
        return total

    def read_rows_into(self, row0: int, row1: int, out: np.ndarray, parallel: bool = False) -> None:
        """Rows [row0, row1) of all 40 channels into `out` (40, row1 - row0, width), which may be a
        view. Reads are split at block-row boundaries, every file per part, so a block row is
        finished before the next one is decoded; a dropped season is not read (zeros).
        `parallel`: one thread per file (GDAL decodes without the GIL), for a read someone is
        waiting on, such as the first strip while the model is idle."""
        if row1 <= row0:
            return
        bh = self.block_rows
        parts = [(r, min(row1, (r // bh + 1) * bh)) for r in [row0, *range((row0 // bh + 1) * bh, row1, bh)]]
        files = range(len(self.datasets))
        if parallel:
            with ThreadPoolExecutor(len(files), thread_name_prefix="tile-read") as pool:
                list(pool.map(lambda i: [self._read_part(i, r, end, out, row0) for r, end in parts], files))
            return
        for r, end in parts:  # block row by block row, every file: the cache holds one block row
            for i in files:
                self._read_part(i, r, end, out, row0)

    def _read_part(self, i: int, r: int, end: int, out: np.ndarray, row0: int) -> None:
        part = out[i * NUM_BANDS : (i + 1) * NUM_BANDS, r - row0 : end - row0]
        if i in self.drop:
            part[...] = 0
            return
        ds = self.datasets[i]
        try:
            ds.read(window=Window(0, r, self.width, end - r), out=part)
        except rasterio.errors.RasterioError as exc:
            raise DataContractError(f"{ds.name}: cannot read rows {r}-{end}: {exc}") from exc

    def read_rows(self, row0: int, row1: int) -> np.ndarray:
        out = np.empty((NUM_CHANNELS, row1 - row0, self.width), dtype=np.uint16)
        self.read_rows_into(row0, row1, out)
        return out

    def close(self) -> None:
        for ds in self.datasets:
            ds.close()

    def __enter__(self) -> TileSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Prefetch:
    """Runs a generator in a background thread, at most `depth` items ahead of the consumer."""

    def __init__(self, items: Iterator, depth: int) -> None:
        self.queue: queue.Queue = queue.Queue(depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(items,), name="sliding-reader", daemon=True)
        self.thread.start()

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterator) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            self._put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    def __iter__(self) -> Iterator:
        while True:
            item = self.queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class _Drain:
    """Calls `consume(item)` for each item put, in order, in a background thread, at most `depth`
    items behind the producer. A failure stops it and is raised to the producer at its next `put`
    or at `finish`."""

    def __init__(self, consume: Callable[[object], None], depth: int, name: str, nice: int = 0) -> None:
        self.consume, self.nice = consume, nice
        self.queue: queue.Queue = queue.Queue(depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        while not self.stop.is_set():
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            try:
                self.consume(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer
                self.error = exc
                return

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every item is consumed; raise the consumer's failure, if any."""
        self.put(_DONE)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


@dataclass(frozen=True)
class _StripEnd:
    index: int
    valid: np.ndarray  # (win, W) any channel observed, original columns


@dataclass
class SlidingPredictor:
    bundle: ModelBundle
    window: int = 128
    overlap: int = 32
    batch_size: int = 8
    device: str = "cpu"
    tta: bool = False  # D4 test-time augmentation: 8 forward passes per window, averaged probabilities
    calibrated: bool = True  # divide logits by the bundle's temperature (False: the raw softmax)
    background_nice: int = 5  # nice levels below the model for the threads beside it (inference.background_nice)

    def __post_init__(self) -> None:
        if self.window % 32:
            raise ValueError(f"inference.window {self.window} must be a multiple of 32")
        self.weights = blend_weights(self.window, self.overlap)
        self._w_t = torch.from_numpy(self.weights).to(self.device)
        self._norm = self.bundle.norm
        self.bundle.network.to(self.device).eval()

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        """Normalised batch (B, 40, win, win) -> blend-weighted calibrated probabilities (B, C, win, win)."""
        x = x.to(self.device, non_blocking=True)
        with torch.inference_mode():
            temperature = self.bundle.meta.temperature if self.calibrated else 1.0
            cuda = str(self.device).startswith("cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext():
                probs = probabilities(self.bundle.network, x, temperature, self.tta)
            return (probs.float() * self._w_t).cpu().numpy()

    def _batches(self, src: TileSource, xs: list[int], ys: list[int], wp: int, hp: int) -> Iterator:
        """(group, normalised batch) per batch of windows and a _StripEnd after each strip; runs in
        the reader thread. One padded uint16 strip is kept; each strip reads only its new rows."""
        m, win = self.overlap, self.window
        h, w = src.height, src.width
        mode = "reflect" if h > 1 and w > 1 else "edge"
        rows = _index_map(h, m, hp, mode)
        cols = _index_map(w, m, wp, mode)
        left, right = cols[:m] + m, cols[m + w :] + m  # padded positions the column pads copy
        strip = np.empty((NUM_CHANNELS, win, wp), np.uint16)
        prev = None
        for k, y in enumerate(ys):
            keep = 0 if prev is None else max(0, prev + win - y)
            if keep:
                strip[:, :keep] = strip[:, win - keep :]
            # padded rows [y + keep, y + win): the part inside the raster is read in place
            a = max(y + keep, m)
            b = min(y + win, m + h)
            if b > a:
                src.read_rows_into(a - m, b - m, strip[:, a - y : b - y, m : m + w], parallel=prev is None)
            reflected = [p for p in range(y + keep, y + win) if not a <= p < b]
            if reflected:
                src_rows = rows[reflected]
                lo, hi = int(src_rows.min()), int(src_rows.max()) + 1
                part = src.read_rows(lo, hi)
                strip[:, [p - y for p in reflected], m : m + w] = part[:, src_rows - lo]
            fresh = strip[:, keep:]
            if m or wp > w + m:
                fresh[:, :, :m] = fresh[:, :, left]
                fresh[:, :, m + w :] = fresh[:, :, right]
            for b0 in range(0, len(xs), self.batch_size):
                group = xs[b0 : b0 + self.batch_size]
                batch = np.empty((len(group), NUM_CHANNELS, win, win), np.float32)
                for j, x in enumerate(group):  # straight from the strip: no uint16 copy of the batch
                    normalize(strip[:, :, x : x + win], self._norm, out=batch[j])
                yield group, torch.from_numpy(batch)
                if prev is None and b0 == 0:  # the model has its first batch: the rest is background
                    lower_thread_priority(self.background_nice)
            valid = np.bitwise_or.reduce(strip[:, :, m : m + w], axis=0) != 0
            yield _StripEnd(k, valid)
            prev = y

    def predict(self, src: TileSource, on_rows: RowsCallback) -> None:
        m, win = self.overlap, self.window
        h, w = src.height, src.width
        stride = win - m
        wp = max(w + 2 * m, win)
        xs = _starts(wp, win, stride)
        hp = max(h + 2 * m, win)
        ys = _starts(hp, win, stride)
        blend = _Blend(self.weights, xs, ys, (h, w, wp), m, on_rows)
        # one block row of the inputs (reads go block row by block row) and the writers' blocks
        with gdal_cache_budget(int(src.block_row_bytes() * 1.05) + 16 * 2**20):
            reader = _Prefetch(self._batches(src, xs, ys, wp, hp), PREFETCH_BATCHES)
            # the main thread only runs the network: blending and the rows' consumer run beside it
            blender = _Drain(blend, BLEND_QUEUE, "sliding-blend", self.background_nice)
            try:
                for item in reader:
                    if isinstance(item, _StripEnd):
                        blender.put(item)
                    else:
                        group, batch = item
                        blender.put((group, self._forward(batch)))
                blender.finish()
            finally:
                reader.close()
                blender.close()


class _Blend:
    """Accumulates one strip of weighted window probabilities and hands each strip's finished rows
    (divided by the weight sum) to `on_rows`; fed in order, from one thread."""

    def __init__(self, weights: np.ndarray, xs: list[int], ys: list[int], shape: tuple[int, int, int], m: int,
                 on_rows: RowsCallback) -> None:
        """`shape`: the tile's height and width, and the padded strip width."""
        win = weights.shape[0]
        h, w, wp = shape
        self.win, self.ys, self.h, self.w, self.m, self.on_rows = win, ys, h, w, m, on_rows
        self.strip_weight = np.zeros((win, wp), np.float32)  # the same for every strip
        for x in xs:
            self.strip_weight[:, x : x + win] += weights
        self.acc = np.zeros((NUM_CLASSES, win, wp), np.float32)
        self.wsum = np.zeros((win, wp), np.float32)

    def __call__(self, item: tuple[list[int], np.ndarray] | _StripEnd) -> None:
        win, m, h, w, acc, wsum = self.win, self.m, self.h, self.w, self.acc, self.wsum
        if not isinstance(item, _StripEnd):
            group, probs = item
            for j, x in enumerate(group):
                acc[:, :, x : x + win] += probs[j]
            return
        k, y = item.index, self.ys[item.index]
        wsum += self.strip_weight
        y_next = self.ys[k + 1] if k + 1 < len(self.ys) else y + win
        done = y_next - y  # rows [y, y_next) are final
        lo, hi = max(y, m), min(y_next, m + h)  # keep rows inside the original raster
        step = max(1, EMIT_PIXELS // w)  # wide tiles: rows handed over in parts
        for r0 in range(lo, hi, step):
            sl = slice(r0 - y, min(r0 + step, hi) - y)
            self.on_rows(r0 - m, acc[:, sl, m : m + w] / wsum[sl, m : m + w], item.valid[sl].copy())
        # shift the unfinished rows to the top of the buffers
        acc[:, : win - done] = acc[:, done:]
        acc[:, win - done :] = 0
        wsum[: win - done] = wsum[done:]
        wsum[win - done :] = 0


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
