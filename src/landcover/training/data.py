"""Training and validation crops, cut from a `CropSource` (packed store or GeoTIFFs).

Training crops are random, with a share centred on rare-class pixels (Roads, Bare, Wetlands by
default) so small classes are not starved, and season dropout (a whole season set to nodata) so
the model copes with a missing mosaic. Validation crops are a fixed, non-overlapping grid, so
every validation pixel is counted once.

An item is raw pixels: (x uint16 (40, c, c), label uint8 (c, c), d4 (2,) = rotation k, flip). The
task normalises, maps labels to targets and applies the D4 transform on the device
(`training.batch`), so a loader core only cuts crops: a quarter of the bytes of float32 crossing
to the GPU, and no per-pixel arithmetic on the CPU.

Every crop is a function of (seed, epoch, index): `CropSampler` hands each index with its seed,
each rank a disjoint share of a per-epoch permutation, so runs repeat exactly and no crop is
drawn twice in an epoch across DDP ranks and loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from landcover.bands import NUM_BANDS, SEASONS
from landcover.dataset import DataContractError
from landcover.training.sources import CropSource

IGNORE_INDEX = 255
NO_D4 = torch.zeros(2, dtype=torch.int64)


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


class TrainCrops(Dataset):
    def __init__(self, infos: list[TileInfo], source: CropSource, crop: int, crops_per_tile: int,
                 rare_share: float, season_dropout: float, augment: bool = True, seed: int = 0) -> None:
        self.infos, self.source, self.crop, self.cpt = infos, source, crop, crops_per_tile
        self.rare_share, self.season_dropout, self.augment, self.seed = rare_share, season_dropout, augment, seed

    def __len__(self) -> int:
        return len(self.infos) * self.cpt

    def window(self, info: TileInfo, rng: np.random.Generator) -> tuple[int, int]:
        c = self.crop
        if len(info.rare_rc) and rng.random() < self.rare_share:
            r, col = info.rare_rc[rng.integers(len(info.rare_rc))] + rng.integers(-c // 4, c // 4 + 1, 2)
            return int(np.clip(r - c // 2, 0, info.height - c)), int(np.clip(col - c // 2, 0, info.width - c))
        return int(rng.integers(0, info.height - c + 1)), int(rng.integers(0, info.width - c + 1))

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i, seed = item if isinstance(item, tuple) else (item, crop_seed(self.seed, 0, item))
        rng = np.random.default_rng(seed)
        info = self.infos[i // self.cpt]
        row, col = self.window(info, rng)
        stack, label = self.source.read(info.key, row, col, self.crop)
        if self.season_dropout > 0:
            drop = rng.random(len(SEASONS)) < self.season_dropout
            if drop.all():
                drop[rng.integers(len(SEASONS))] = False
            for s in np.flatnonzero(drop):
                stack[s * NUM_BANDS : (s + 1) * NUM_BANDS] = 0
        d4 = torch.tensor([int(rng.integers(4)), int(rng.random() < 0.5)]) if self.augment else NO_D4
        return torch.from_numpy(stack), torch.from_numpy(label), d4


class ValCrops(Dataset):
    """A fixed grid of non-overlapping crops per tile (up to `per_tile`, evenly chosen)."""

    def __init__(self, infos: list[TileInfo], source: CropSource, crop: int, per_tile: int) -> None:
        self.source, self.crop = source, crop
        self.items: list[tuple[str, int, int]] = []
        for info in infos:
            grid = [(r, c) for r in range(0, info.height - crop + 1, crop)
                    for c in range(0, info.width - crop + 1, crop)]
            pick = np.linspace(0, len(grid) - 1, min(per_tile, len(grid))).round().astype(int)
            self.items += [(info.key, *grid[k]) for k in sorted(set(pick))]

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        key, row, col = self.items[i]
        return self.source.read(key, row, col, self.crop)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        stack, label = self.raw(item[0] if isinstance(item, tuple) else item)
        return torch.from_numpy(stack), torch.from_numpy(label), NO_D4
