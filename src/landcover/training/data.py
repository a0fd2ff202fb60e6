"""Training and validation crops read as windows (never whole tiles per sample).

Training crops are random, with a share centred on rare-class pixels (Roads, Bare, Wetlands by
default) so small classes are not starved, D4 flips/rotations, and season dropout (a whole season
set to nodata) so the model copes with a missing mosaic. Validation crops are a fixed,
non-overlapping grid, so every validation pixel is counted once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from landcover.bands import NUM_BANDS, SEASONS
from landcover.dataset import DataContractError, TileRef, check_tile, read_label
from landcover.model.normalization import NormStats, normalize

IGNORE_INDEX = 255


def to_target(label: np.ndarray) -> np.ndarray:
    """Label codes 1..10 -> class indices 0..9; unlabelled (0) and invalid codes -> ignore."""
    target = label.astype(np.int64) - 1
    target[(label == 0) | (label > 10)] = IGNORE_INDEX
    return target


class _Readers:
    """Per-process LRU of open rasterio datasets (handles are not shared across forks). Bounded:
    a continental training set has tens of thousands of files, far above the open-file limit."""

    def __init__(self, max_open: int = 64) -> None:
        self.pid = -1
        self.max_open = max_open
        self.handles: OrderedDict[str, rasterio.io.DatasetReader] = OrderedDict()

    def get(self, path: str) -> rasterio.io.DatasetReader:
        if self.pid != os.getpid():
            self.handles, self.pid = OrderedDict(), os.getpid()
        if path in self.handles:
            self.handles.move_to_end(path)
            return self.handles[path]
        try:
            handle = rasterio.open(path)
        except rasterio.errors.RasterioError as exc:
            raise DataContractError(f"{path}: cannot open: {exc}") from exc
        self.handles[path] = handle
        while len(self.handles) > self.max_open:
            self.handles.popitem(last=False)[1].close()
        return handle

    def read(self, path: str, window: Window, indexes=None) -> np.ndarray:
        try:
            return self.get(path).read(indexes, window=window)
        except rasterio.errors.RasterioError as exc:
            raise DataContractError(f"{path}: cannot read window {window}: {exc}") from exc


@dataclass
class TileInfo:
    tile: TileRef
    height: int
    width: int
    rare_rc: np.ndarray  # (K, 2) sampled row/col of rare-class pixels


def index_tiles(tiles: list[TileRef], crop: int, rare_classes: tuple[int, ...], max_rare: int = 512,
                seed: int = 0) -> list[TileInfo]:
    rng = np.random.default_rng(seed)
    infos = []
    for tile in tiles:
        h, w = check_tile(tile)
        if h < crop or w < crop:
            raise DataContractError(f"{tile.directory}: tile {h}x{w} is smaller than train.crop_size {crop}")
        label = read_label(tile)
        rare = np.flatnonzero(np.isin(label, rare_classes))
        if rare.size > max_rare:
            rare = rng.choice(rare, max_rare, replace=False)
        infos.append(TileInfo(tile, h, w, np.column_stack(np.unravel_index(rare, (h, w)))))
    return infos


class _CropReader:
    def __init__(self, norm: NormStats) -> None:
        self.norm = norm
        self.readers = _Readers()

    def read(self, tile: TileRef, window: Window) -> tuple[np.ndarray, np.ndarray]:
        stack = np.concatenate([self.readers.read(str(tile.season_path(s)), window) for s in SEASONS])
        label = self.readers.read(str(tile.label_path), window, 1)
        return stack, label


class TrainCrops(Dataset):
    def __init__(self, infos: list[TileInfo], norm: NormStats, crop: int, crops_per_tile: int,
                 rare_share: float, season_dropout: float, augment: bool = True) -> None:
        self.infos, self.crop, self.cpt = infos, crop, crops_per_tile
        self.rare_share, self.season_dropout, self.augment = rare_share, season_dropout, augment
        self.reader = _CropReader(norm)

    def __len__(self) -> int:
        return len(self.infos) * self.cpt

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        # torch's RNG is reseeded per worker and epoch by the DataLoader: new crops every epoch
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
        info = self.infos[i // self.cpt]
        c = self.crop
        if len(info.rare_rc) and rng.random() < self.rare_share:
            r, col = info.rare_rc[rng.integers(len(info.rare_rc))] + rng.integers(-c // 4, c // 4 + 1, 2)
            r0, c0 = int(np.clip(r - c // 2, 0, info.height - c)), int(np.clip(col - c // 2, 0, info.width - c))
        else:
            r0, c0 = int(rng.integers(0, info.height - c + 1)), int(rng.integers(0, info.width - c + 1))
        stack, label = self.reader.read(info.tile, Window(c0, r0, c, c))
        if self.season_dropout > 0:
            drop = rng.random(len(SEASONS)) < self.season_dropout
            if drop.all():
                drop[rng.integers(len(SEASONS))] = False
            for s in np.flatnonzero(drop):
                stack[s * NUM_BANDS : (s + 1) * NUM_BANDS] = 0
        x = normalize(stack, self.reader.norm)
        y = to_target(label)
        if self.augment:  # D4: rotations and a flip
            k = int(rng.integers(4))
            x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


class ValCrops(Dataset):
    """A fixed grid of non-overlapping crops per tile (up to `per_tile`, evenly chosen)."""

    def __init__(self, infos: list[TileInfo], norm: NormStats, crop: int, per_tile: int) -> None:
        self.reader = _CropReader(norm)
        self.items: list[tuple[TileRef, Window]] = []
        for info in infos:
            grid = [(r, c) for r in range(0, info.height - crop + 1, crop)
                    for c in range(0, info.width - crop + 1, crop)]
            pick = np.linspace(0, len(grid) - 1, min(per_tile, len(grid))).round().astype(int)
            self.items += [(info.tile, Window(grid[k][1], grid[k][0], crop, crop)) for k in sorted(set(pick))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        tile, window = self.items[i]
        stack, label = self.reader.read(tile, window)
        return torch.from_numpy(normalize(stack, self.reader.norm)), torch.from_numpy(to_target(label))
