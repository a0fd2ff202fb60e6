"""The 20 m half of a scene onto the 10 m grid, with its mask decided where it was made.

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


def _positions(u0: float, v0: float, shape: tuple[int, int], factor: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    return v0 + np.arange(h) / factor, u0 + np.arange(w) / factor


def nearest(coarse: np.ndarray, u0: float, v0: float, shape: tuple[int, int], factor: int = 2) -> np.ndarray:
    """(..., h, w) from (..., H, W): the coarse pixel each fine pixel centre lies in."""
    v, u = _positions(u0, v0, shape, factor)
    rows, cols = np.floor(v + 0.5).astype(np.int64), np.floor(u + 0.5).astype(np.int64)
    return coarse[..., rows[:, None], cols[None, :]]


def upsample_clear(bands: np.ndarray, clear: np.ndarray, u0: float, v0: float, shape: tuple[int, int],
                   bilinear: bool, factor: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """((T, B, h, w) band values, (T, h, w) clear) on the fine grid from (T, B, H, W) bands and their
    (T, H, W) 20 m clear mask; `u0`, `v0`: coarse pixel coordinates of the first fine pixel centre.
    Unclear fine pixels are 0 in every band.

    Bilinear is done separably (between rows, then between columns) on the masked values and on the
    mask itself, and their ratio is the renormalised value. The weights are quarters and the values
    integers below 2^16, so every product and sum is exact in float32: the same numbers as the
    four-term sum over the clear neighbours."""
    fine_clear = nearest(clear, u0, v0, shape, factor)
    if not bilinear:
        values = nearest(bands, u0, v0, shape, factor)
        return np.where(fine_clear[:, None], values, 0).astype(bands.dtype), fine_clear
    weight = clear.astype(np.float32)  # (T, H, W): a masked neighbour weighs nothing
    value = np.empty((bands.shape[0], bands.shape[1] + 1, *bands.shape[2:]), np.float32)
    np.multiply(bands, weight[:, None], out=value[:, :-1])
    value[:, -1] = weight  # the weights go through the same interpolation: the renormalisation
    rows = _half_steps(value, v0, shape[0], axis=2, factor=factor)
    out = _half_steps(rows, u0, shape[1], axis=3, factor=factor)
    total, norm = out[:, :-1], out[:, -1:]
    np.maximum(norm, 1e-12, out=norm)
    total /= norm
    total += 0.5
    np.floor(total, out=total)
    total *= fine_clear[:, None]  # unclear: 0
    return total.astype(bands.dtype), fine_clear


def _half_steps(a: np.ndarray, origin: float, n: int, axis: int, factor: int = 2) -> np.ndarray:
    """`a` sampled at coordinates origin + j / factor (j = 0 .. n - 1) along `axis`, linearly. Fine
    samples of one phase (j mod factor) share the fraction and step one coarse pixel at a time, so
    each phase is two slices and a weighted sum, with no gather."""
    shape = list(a.shape)
    shape[axis] = n
    out = np.empty(shape, np.float32)
    for phase in range(factor):
        count = len(range(phase, n, factor))
        if count == 0:
            continue
        position = origin + phase / factor
        first = math.floor(position)
        frac = np.float32(position - first)
        low = [slice(None)] * a.ndim
        high = [slice(None)] * a.ndim
        dst = [slice(None)] * a.ndim
        low[axis], high[axis], dst[axis] = (slice(first, first + count), slice(first + 1, first + 1 + count),
                                            slice(phase, n, factor))
        target = out[tuple(dst)]
        np.multiply(a[tuple(low)], 1 - frac, out=target)
        target += a[tuple(high)] * frac
    return out


def fine_block(coarse: np.ndarray, u0: float, v0: float, shape: tuple[int, int], bilinear: bool,
               masked: tuple[int, ...], buffer_px: int, factor: int = 2) -> np.ndarray:
    """One block of the 20 m half on the fine grid. coarse: (T, B + 1, H, W) uint16, the 20 m bands
    then the SCL, reaching `buffer_px` beyond the bilinear neighbours on every side. Returns
    (T, B + 2, h, w) uint16: the bands (0 where unclear), the SCL (nearest) and the clear flag."""
    bands, scl = coarse[:, :-1], coarse[:, -1]
    clear = clear_20m(bands, scl, masked, buffer_px)
    values, fine_clear = upsample_clear(bands, clear, u0, v0, shape, bilinear, factor)
    fine_scl = nearest(scl, u0, v0, shape, factor)
    return np.concatenate([values, fine_scl[:, None].astype(np.uint16), fine_clear[:, None].astype(np.uint16)],
                          axis=1)
