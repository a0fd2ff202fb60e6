"""Writes tiles into a store with zarr itself, so the arrays are plain zarr v3 any tool opens."""

from __future__ import annotations

import math

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from landcover.dataset import TileRef, check_tile, read_label, read_stack
from landcover.trainstore.layout import LABEL_BAND, PIXEL_BANDS, StoredTile, array_path

COMPRESSIONS = ("none", "lz4", "zstd")


def compressors(compression: str) -> list | None:
    """none (the default: measured fastest, docs/training-store.md), or blosc lz4 / zstd with byte shuffle."""
    if compression == "none":
        return None
    return [BloscCodec(cname=compression, clevel=5 if compression == "lz4" else 1, shuffle="shuffle")]


def write_array(group: zarr.Group, path: str, data: np.ndarray, chunk: int, compression: str) -> None:
    """(H, W, bands) as one shard of chunk x chunk px inner chunks."""
    height, width, bands = data.shape
    shard = (math.ceil(height / chunk) * chunk, math.ceil(width / chunk) * chunk, bands)
    array = group.create_array(path, shape=data.shape, dtype=data.dtype, chunks=(chunk, chunk, bands),
                               shards=shard, compressors=compressors(compression), fill_value=0, overwrite=True)
    array[...] = data


def write_tile(group: zarr.Group, split: str, tile: TileRef, chunk: int, compression: str) -> StoredTile:
    """Both arrays of one tile (the tile in memory twice, as read and interleaved: 0.7 GB at 2048 px)."""
    height, width = check_tile(tile)
    label = read_label(tile)
    pixels = np.empty((height, width, PIXEL_BANDS), np.uint16)
    pixels[..., :LABEL_BAND] = np.moveaxis(read_stack(tile), 0, -1)
    pixels[..., LABEL_BAND] = label
    write_array(group, array_path(split, tile.key, "pixels"), pixels, chunk, compression)
    del pixels
    write_array(group, array_path(split, tile.key, "label"), label[..., None], chunk, compression)
    return StoredTile(tile.key, split, height, width)
