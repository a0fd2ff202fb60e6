"""The 20 m half of a scene and the 10 m grid: the 20 m grid under a tile, and the mask decided where
it was made (the upsampling itself runs in the compiled composite, `kernel.py`).

Sen2Cor classifies each 20 m pixel (SCL), so what is clear is decided at 20 m: a 20 m pixel is clear
when its SCL class is not masked, every 20 m band holds data, and (with `mosaic.mask_buffer_m`) no
masked cloud or shadow pixel lies within the buffer. A 10 m pixel is clear when the 20 m pixel it
lies in is (nearest, as the SCL itself is brought to 10 m).

Bilinear upsampling then never reaches across a masked or nodata 20 m pixel: a clear 10 m pixel's
20 m band values are the bilinear weights of its four 20 m neighbours restricted to the clear ones
and renormalised. The 20 m pixel it lies in always has weight 3/4 along each axis (9/16 in all) on
these aligned grids, so it is always among them and the weights never vanish; on ground that is uniform where
clear, the value is that ground exactly. Renormalising (rather than dropping a pixel with a masked
neighbour) keeps every clear observation at a cloud's edge, where clear days are scarcest, and
stays as smooth as bilinear wherever all four neighbours are clear.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine

from landcover.geo import TileGrid, snap

CLOUD_AND_SHADOW = (3, 8, 9, 10)  # the SCL classes a buffer grows (Sen2Cor under-detects their edges)


def buffer_pixels(buffer_m: float, resolution: float = 20.0) -> int:
    """How many 20 m pixels a buffer of `buffer_m` metres reaches (centre to centre)."""
    return math.floor(buffer_m / resolution + 1e-9)


def coarse_grid(tile: TileGrid, margin: int = 1, factor: int = 2) -> tuple[Affine, int, int, float, float]:
    """The 20 m grid under a tile: aligned to multiples of 20 m, `margin` 20 m pixels around it (one
    for bilinear neighbours, plus the mask buffer's reach). Returns (transform, width, height, and the
    20 m pixel coordinate of the first 10 m pixel centre along x and y)."""
    res = tile.resolution * factor
    west, north = snap(tile.west, res, "floor") - margin * res, snap(tile.north, res, "ceil") + margin * res
    u0 = (tile.west - west) / res + 0.5 / factor - 0.5
    v0 = (north - tile.north) / res + 0.5 / factor - 0.5
    width = math.floor(u0 + (tile.width - 1) / factor) + 1 + margin
    height = math.floor(v0 + (tile.height - 1) / factor) + 1 + margin
    return Affine(res, 0, west, 0, -res, north), width, height, u0, v0


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return yy * yy + xx * xx <= radius * radius


def clear_20m(bands: np.ndarray, scl: np.ndarray, masked: tuple[int, ...], buffer_px: int = 0) -> np.ndarray:
    """(T, H, W) True where a 20 m pixel saw the ground. bands: (T, B, H, W) with 0 = nodata;
    scl: (T, H, W). The buffer grows the masked cloud and shadow classes by a disk of `buffer_px`."""
    unclear = np.isin(scl, masked)
    if buffer_px > 0:
        from scipy.ndimage import binary_dilation

        grow = np.isin(scl, [c for c in CLOUD_AND_SHADOW if c in masked])
        structure = _disk(buffer_px)[None]  # never across time
        unclear |= binary_dilation(grow, structure=structure)
    return ~unclear & (bands != 0).all(axis=1)
