"""Where training crops come from: the packed store (the default) or the GeoTIFF tiles (small
sets, and the reference the store is checked against). Both give the raw pixels of one window as
(size, size, 41) uint16, the 40 bands then the label (the store's layout, channels-last);
everything else (which window, dropout, D4, normalisation) is shared, so both paths train alike.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Protocol

import numpy as np
import rasterio
from rasterio.windows import Window

from landcover.bands import NUM_BANDS, SEASONS
from landcover.dataset import DataContractError, TileRef, check_tile, read_label
from landcover.trainstore.layout import LABEL_BAND, PIXEL_BANDS, PackedStore


class CropSource(Protocol):
    def keys(self) -> list[str]: ...
    def shape(self, key: str) -> tuple[int, int]: ...
    def label(self, key: str) -> np.ndarray: ...
    def read(self, key: str, row: int, col: int, size: int, out: np.ndarray | None = None) -> np.ndarray:
        """(size, size, 41) uint16: bands, then the label; written into `out` when given."""
        ...


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


class GeoTiffSource:
    """Windows of the five files of each tile (bands checked once per tile, on `shape`)."""

    def __init__(self, tiles: list[TileRef]) -> None:
        self.tiles = {t.key: t for t in tiles}
        self.readers = _Readers()

    def keys(self) -> list[str]:
        return list(self.tiles)

    def shape(self, key: str) -> tuple[int, int]:
        return check_tile(self.tiles[key])

    def label(self, key: str) -> np.ndarray:
        return read_label(self.tiles[key])

    def read(self, key: str, row: int, col: int, size: int, out: np.ndarray | None = None) -> np.ndarray:
        tile, window = self.tiles[key], Window(col, row, size, size)
        out = np.empty((size, size, PIXEL_BANDS), np.uint16) if out is None else out
        for k, season in enumerate(SEASONS):
            bands = self.readers.read(str(tile.season_path(season)), window)
            out[..., k * NUM_BANDS:(k + 1) * NUM_BANDS] = np.moveaxis(bands, 0, -1)
        out[..., LABEL_BAND] = self.readers.read(str(tile.label_path), window, 1)
        return out


class StoreSource:
    """One split of a packed store."""

    def __init__(self, store: PackedStore, split: str) -> None:
        self.store, self.split = store, split
        self.shapes = {t.key: (t.height, t.width) for t in store.tiles(split)}

    def keys(self) -> list[str]:
        return list(self.shapes)

    def shape(self, key: str) -> tuple[int, int]:
        return self.shapes[key]

    def label(self, key: str) -> np.ndarray:
        return self.store.label(self.split, key)

    def read(self, key: str, row: int, col: int, size: int, out: np.ndarray | None = None) -> np.ndarray:
        return self.store.read(self.split, key, row, col, size, size, out)
