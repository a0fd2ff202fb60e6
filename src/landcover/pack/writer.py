"""Writes tiles into a store with zarr itself, so the arrays are plain zarr v3 any tool opens."""

from __future__ import annotations

import math

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from landcover.dataset import TileRef, check_tile, read_label, read_stack
from landcover.pack.store import StoredTile, array_path

COMPRESSIONS = ("none", "lz4", "zstd")


def compressors(compression: str) -> list | None:
    """none (the default: measured fastest, docs/training-store.md), or blosc lz4 / zstd with byte shuffle."""
    if compression == "none":
        return None
    return [BloscCodec(cname=compression, clevel=5 if compression == "lz4" else 1, shuffle="shuffle")]


def write_array(group: zarr.Group, path: str, data: np.ndarray, chunk: int, compression: str) -> None:
    bands, height, width = data.shape
    shard = (bands, math.ceil(height / chunk) * chunk, math.ceil(width / chunk) * chunk)
    array = group.create_array(path, shape=data.shape, dtype=data.dtype, chunks=(bands, chunk, chunk),
                               shards=shard, compressors=compressors(compression), fill_value=0, overwrite=True)
    array[...] = data


def write_tile(group: zarr.Group, split: str, tile: TileRef, chunk: int, compression: str) -> StoredTile:
    """Both arrays of one tile (the whole tile in memory once: 335 MB at 2048 px)."""
    height, width = check_tile(tile)
    write_array(group, array_path(split, tile.key, "x"), read_stack(tile), chunk, compression)
    write_array(group, array_path(split, tile.key, "label"), read_label(tile)[None], chunk, compression)
    return StoredTile(tile.key, split, height, width)
