"""The packed training store: one zarr v3 group holding the split's train and val tiles.

Layout (docs/training-store.md):
    <store>/zarr.json                       group; attributes["landcover_pack"] = StoreMeta
    <store>/<split>/<city>/<tile>/pixels    (H, W, 41) uint16: the 40 season-major bands, then the label
    <store>/<split>/<city>/<tile>/label     (H, W, 1) uint8: the label again, read whole to index rare classes
Each array is one shard file of inner chunks of `chunk` x `chunk` px holding every band of those
pixels (pixel-interleaved, as channels-last batches want them), so a random crop is a few long
copies per pixel row and touches no other tile's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from landcover.trainstore.shards import ShardedArray, StoreError, byte_source

FORMAT = 1
ATTR = "landcover_pack"
PIXEL_BANDS = 41  # 40 reflectance bands and the label: one read per crop
LABEL_BAND = 40


@dataclass(frozen=True)
class StoredTile:
    key: str      # <city>/<tile>
    split: str
    height: int
    width: int


@dataclass
class StoreMeta:
    chunk: int
    compression: str
    data_version: str
    split_hash: str
    norm: dict
    tiles: list[StoredTile] = field(default_factory=list)
    format: int = FORMAT

    def to_dict(self) -> dict:
        return {"format": self.format, "chunk": self.chunk, "compression": self.compression,
                "data_version": self.data_version, "split_hash": self.split_hash, "norm": self.norm,
                "tiles": [[t.key, t.split, t.height, t.width] for t in self.tiles]}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> StoreMeta:
        if d.get("format") != FORMAT:
            raise StoreError(f"{where}: store format {d.get('format')!r}, this code reads {FORMAT}: "
                             "rerun landcover pack")
        tiles = [StoredTile(k, s, int(h), int(w)) for k, s, h, w in d["tiles"]]
        return cls(int(d["chunk"]), d["compression"], d["data_version"], d["split_hash"], d["norm"], tiles)


def array_path(split: str, key: str, name: str) -> str:
    return f"{split}/{key}/{name}"


class PackedStore:
    """Read side of a store at a local path or fsspec URL. Cheap to pickle into DataLoader
    workers: file handles and shard indices are opened per process on first use."""

    def __init__(self, url: str, storage_options: dict | None = None) -> None:
        import json

        self.url = str(url).rstrip("/")
        self.source, self.root = byte_source(self.url, storage_options)
        where = f"{self.url}/zarr.json"
        try:
            attrs = json.loads(self.source.text(f"{self.root}/zarr.json")).get("attributes", {})
        except StoreError as exc:
            raise StoreError(f"{where}: no packed store here (run landcover pack): {exc}") from exc
        if ATTR not in attrs:
            raise StoreError(f"{where}: a zarr group, but not one written by landcover pack")
        self.meta = StoreMeta.from_dict(attrs[ATTR], where)
        self.by_key = {(t.split, t.key): t for t in self.meta.tiles}
        self.arrays: dict[tuple[str, str, str], ShardedArray] = {}

    def tiles(self, split: str) -> list[StoredTile]:
        return [t for t in self.meta.tiles if t.split == split]

    def array(self, split: str, key: str, name: str) -> ShardedArray:
        ref = (split, key, name)
        if ref not in self.arrays:
            if (split, key) not in self.by_key:
                raise StoreError(f"{self.url}: no {split} tile {key} in the store")
            self.arrays[ref] = ShardedArray(self.source, f"{self.root}/{array_path(split, key, name)}")
        return self.arrays[ref]

    def read(self, split: str, key: str, row: int, col: int, size_h: int, size_w: int,
             out: np.ndarray | None = None) -> np.ndarray:
        """(h, w, 41) uint16 of one window (bands then label), into `out` when given."""
        return self.array(split, key, "pixels").read(row, col, size_h, size_w, out)

    def label(self, split: str, key: str) -> np.ndarray:
        t = self.by_key[(split, key)]
        return self.array(split, key, "label").read(0, 0, t.height, t.width)[..., 0]
