"""Training and validation crops, cut from a `CropSource` (packed store or GeoTIFFs).

Training crops are random, with a share centred on rare-class pixels (Roads, Bare, Wetlands by
default) so small classes are not starved, and season dropout (a whole season set to nodata) so
the model copes with a missing mosaic. Validation crops are a fixed, non-overlapping grid, so
every validation pixel is counted once.

A batch is raw pixels and the draws made for them: pixels (B, c, c, 41) uint16 (40 bands then the
label, channels-last as the store holds them), d4 (B, 2) = rotation k and mirror, drop (B, 4) =
seasons blanked. The task applies season dropout, normalises, maps labels to targets and applies
the D4 transform on the device (`training.batch`), so a loader core only copies crops: half the
bytes of float32 crossing to the GPU, and no per-pixel arithmetic on the CPU.

Every crop is a function of (seed, epoch, index): `CropSampler` hands each index with its seed,
each rank a disjoint share of a per-epoch permutation, so runs repeat exactly and no crop is
drawn twice in an epoch across DDP ranks and loader workers.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate, get_worker_info

from landcover.bands import SEASONS
from landcover.dataset import DataContractError
from landcover.training.sources import CropSource
from landcover.trainstore.layout import LABEL_BAND, PIXEL_BANDS
from landcover.trainstore.shards import LIBC

IGNORE_INDEX = 255
RING_SLOTS = 8  # batch buffers per loader process (BatchRing): twice what can be in use at once


class Batch(NamedTuple):
    pixels: torch.Tensor  # (B, c, c, 41) uint16: DN of the 40 bands, then the label code
    d4: torch.Tensor      # (B, 2) int64: quarter turns k, mirror
    drop: torch.Tensor    # (B, 4) bool: seasons blanked to nodata (season dropout)


def _huge_pages(t: torch.Tensor) -> torch.Tensor:
    """Ask Linux for transparent huge pages on a fresh batch before it is touched: a 256 px batch
    is 84 MB, and faulting it in 4 KB pages cost as much as reading the crops (docs/training-store.md)."""
    nbytes = t.numel() * t.element_size()
    if LIBC is None or nbytes < 1 << 22:
        return t
    start = -(-t.data_ptr() // mmap.PAGESIZE) * mmap.PAGESIZE
    end = (t.data_ptr() + nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > start:
        LIBC.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), mmap.MADV_HUGEPAGE)
    return t


def batch_buffer(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An empty batch tensor; in a loader worker, in shared memory, as default_collate allocates
    (the batch then crosses to the main process without another copy)."""
    if get_worker_info() is None:
        return _huge_pages(torch.empty(shape, dtype=dtype))
    out = torch.empty(0, dtype=dtype)
    storage = out.untyped_storage()._new_shared(math.prod(shape) * out.element_size())
    return out.set_(storage, 0, shape)


class BatchRing:
    """Batch buffers reused in turn (per process): a fresh 84 MB batch costs more in page faults
    than cutting its 16 crops (docs/training-store.md). Safe only where a batch is done with
    before `size` more are made: the training loaders, whose consumer holds at most the current
    and the next batch and whose workers have at most `prefetch_factor` batches in flight."""

    def __init__(self, size: int) -> None:
        self.size, self.pid, self.slots, self.turn = size, -1, [], 0

    def __getstate__(self) -> dict:
        return {"size": self.size, "pid": -1, "slots": [], "turn": 0}  # each process fills its own

    def take(self, n: int, crop: int) -> Batch:
        if self.pid != os.getpid():
            self.pid, self.slots, self.turn = os.getpid(), [], 0
        k = self.turn % self.size
        self.turn += 1
        if k == len(self.slots):
            self.slots.append(empty_batch(n, crop))
        slot = self.slots[k]
        if slot.pixels.shape[0] < n or slot.pixels.shape[1] != crop:
            slot = self.slots[k] = empty_batch(n, crop)
        return Batch(*(t[:n] for t in slot))


def empty_batch(n: int, crop: int) -> Batch:
    return Batch(batch_buffer((n, crop, crop, PIXEL_BANDS), torch.uint16), batch_buffer((n, 2), torch.int64),
                 batch_buffer((n, len(SEASONS)), torch.bool))


def new_batch(n: int, crop: int, ring: BatchRing | None) -> Batch:
    return ring.take(n, crop) if ring is not None else empty_batch(n, crop)


def collate(batch):
    """The loaders' collate_fn: `__getitems__` already built the batch in place; items fetched one
    by one (a sampler without batches) are stacked."""
    return batch if isinstance(batch, Batch) else Batch(*default_collate(batch))


def to_target(label: np.ndarray) -> np.ndarray:
    """Label codes 1..10 -> class indices 0..9; unlabelled (0) and invalid codes -> ignore."""
    target = label.astype(np.int64) - 1
    target[(label == 0) | (label > 10)] = IGNORE_INDEX
    return target


def crop_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


@dataclass
class TileInfo:
    key: str
    height: int
    width: int
    rare_rc: np.ndarray  # (K, 2) sampled row/col of rare-class pixels


def index_tiles(source: CropSource, crop: int, rare_classes: tuple[int, ...], max_rare: int = 512,
                seed: int = 0) -> list[TileInfo]:
    rng = np.random.default_rng(seed)
    infos = []
    for key in source.keys():
        h, w = source.shape(key)
        if h < crop or w < crop:
            raise DataContractError(f"{key}: tile {h}x{w} is smaller than train.crop_size {crop}")
        rare = np.flatnonzero(np.isin(source.label(key), rare_classes)) if rare_classes else np.empty(0, np.int64)
        if rare.size > max_rare:
            rare = rng.choice(rare, max_rare, replace=False)
        infos.append(TileInfo(key, h, w, np.column_stack(np.unravel_index(rare, (h, w)))))
    return infos


class CropSampler(Sampler):
    """(index, crop seed) pairs: this rank's share of a permutation drawn from (seed, epoch).
    Ranks get equal, disjoint shares (the remainder is left out, never padded with repeats).
    Lightning calls `set_epoch` before each epoch; workers need nothing else to vary crops."""

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _share(self) -> np.ndarray:
        rank, world = rank_and_world()
        if self.n < world:
            raise DataContractError(f"{self.n} crops cannot be shared by {world} ranks: every rank needs at least one "
                                    "(more tiles or train.val_crops_per_tile / train.crops_per_tile)")
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle \
            else np.arange(self.n)
        if not self.shuffle:  # validation: every item once over all ranks
            return order[rank::world]
        return order[rank::world][: self.n // world]

    def __iter__(self):
        for i in self._share():
            yield int(i), crop_seed(self.seed, self.epoch, int(i))

    def __len__(self) -> int:
        return len(self._share())


class _Crops(Dataset):
    """Datasets whose batches `__getitems__` builds (into `ring` buffers for the training loaders)."""

    ring: BatchRing | None = None

    def __getitems__(self, items: list) -> Batch:
        raise NotImplementedError

    def __getitem__(self, item: int | tuple[int, int]) -> Batch:
        ring, self.ring = self.ring, None  # a single item is the caller's to keep: never recycled
        try:
            return Batch(*(t[0] for t in self.__getitems__([item])))
        finally:
            self.ring = ring


class TrainCrops(_Crops):
    def __init__(self, infos: list[TileInfo], source: CropSource, crop: int, crops_per_tile: int,
                 rare_share: float, season_dropout: float, augment: bool = True, seed: int = 0,
                 ring: BatchRing | None = None) -> None:
        self.infos, self.source, self.crop, self.cpt = infos, source, crop, crops_per_tile
        self.rare_share, self.season_dropout, self.augment, self.seed = rare_share, season_dropout, augment, seed
        self.ring = ring  # set by the training loaders only (see BatchRing)

    def __len__(self) -> int:
        return len(self.infos) * self.cpt

    def window(self, info: TileInfo, rng: np.random.Generator) -> tuple[int, int]:
        c = self.crop
        if len(info.rare_rc) and rng.random() < self.rare_share:
            r, col = info.rare_rc[rng.integers(len(info.rare_rc))] + rng.integers(-c // 4, c // 4 + 1, 2)
            return int(np.clip(r - c // 2, 0, info.height - c)), int(np.clip(col - c // 2, 0, info.width - c))
        return int(rng.integers(0, info.height - c + 1)), int(rng.integers(0, info.width - c + 1))

    def _fill(self, item: int | tuple[int, int], pixels: np.ndarray, d4: np.ndarray, drop: np.ndarray) -> None:
        """One crop into its slots: everything about it follows from its (index, seed)."""
        i, seed = item if isinstance(item, tuple) else (item, crop_seed(self.seed, 0, item))
        rng = np.random.default_rng(seed)
        info = self.infos[i // self.cpt]
        row, col = self.window(info, rng)
        self.source.read(info.key, row, col, self.crop, pixels)
        drop[:] = False
        if self.season_dropout > 0:
            drop[:] = rng.random(len(SEASONS)) < self.season_dropout
            if drop.all():
                drop[rng.integers(len(SEASONS))] = False
        d4[:] = (int(rng.integers(4)), int(rng.random() < 0.5)) if self.augment else (0, 0)

    def __getitems__(self, items: list) -> Batch:
        """A whole batch, each crop read straight into its slot (no per-crop arrays to stack)."""
        batch = new_batch(len(items), self.crop, self.ring)
        pixels, d4, drop = (t.numpy() for t in batch)
        for k, item in enumerate(items):
            self._fill(item, pixels[k], d4[k], drop[k])
        return batch



class ValCrops(_Crops):
    """A fixed grid of non-overlapping crops per tile (up to `per_tile`, evenly chosen)."""

    def __init__(self, infos: list[TileInfo], source: CropSource, crop: int, per_tile: int,
                 ring: BatchRing | None = None) -> None:
        self.source, self.crop, self.ring = source, crop, ring
        self.items: list[tuple[str, int, int]] = []
        for info in infos:
            grid = [(r, c) for r in range(0, info.height - crop + 1, crop)
                    for c in range(0, info.width - crop + 1, crop)]
            pick = np.linspace(0, len(grid) - 1, min(per_tile, len(grid))).round().astype(int)
            self.items += [(info.key, *grid[k]) for k in sorted(set(pick))]

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """((40, c, c) uint16 bands, (c, c) uint8 label) of item i, for figures."""
        key, row, col = self.items[i]
        pixels = self.source.read(key, row, col, self.crop)
        bands = np.ascontiguousarray(np.moveaxis(pixels[..., :LABEL_BAND], -1, 0))
        return bands, pixels[..., LABEL_BAND].astype(np.uint8)

    def __getitems__(self, items: list) -> Batch:
        batch = new_batch(len(items), self.crop, self.ring)
        batch.d4.zero_()
        batch.drop.zero_()
        pixels = batch.pixels.numpy()
        for k, item in enumerate(items):
            key, row, col = self.items[item[0] if isinstance(item, tuple) else item]
            self.source.read(key, row, col, self.crop, pixels[k])
        return batch

