"""The composite of one strip, pixel by pixel, compiled with numba.

For every 10 m pixel of the strip and every scene: the observation is clear when the 20 m pixel the
pixel lies in was judged clear (`resample.clear_20m`: SCL, 20 m nodata, the buffer) and the 10 m bands
hold data; its 20 m bands are the bilinear weights of the four surrounding 20 m pixels restricted
to the clear ones and renormalised (`resample.py` says why), or the 20 m pixel itself (nearest).
Observations of one day are fused (the first clear one in scene order), each scene's BOA offset is
added, and per band the clear days are sorted (a handful to a few dozen: insertion sort) and the
quantile taken with numpy's default (linear) interpolation, rounded half to even, clipped to
1..65535; 0 where no day is clear. The plausibility counts of each scene (clear land, SCL 4 or 5,
and how much of it is <= 0 in B02 after the offset) come from the same pass.

Why compiled: done with whole-array numpy operations, the same arithmetic makes a dozen passes over
arrays of scenes x bands x pixels (upsampling, masking, sorting, gathering), and those passes were
most of a mosaic's time (docs/performance.md, section 7); here each pixel's observations stay in
the CPU's cache. The arithmetic is the numpy code's, in the same precision: reflectances in float32,
the bilinear weights exact (quarters of integers), so the numbers are identical.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np

# BANDS order: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12
SLOTS_10M = np.array([0, 1, 2, 6], np.int64)  # B02 B03 B04 B08
SLOTS_20M = np.array([3, 4, 5, 7, 8, 9], np.int64)  # B05 B06 B07 B8A B11 B12
MAX_DN = 65535.0
MAX_COUNT = 255


@lru_cache(maxsize=64)
def sorting_network(n: int) -> np.ndarray:
    """Batcher's odd-even merge sort for `n` inputs: (pairs, 2) compare-exchanges (low, high). Built
    for the next power of two; pairs that touch the padding (+inf, which stays last) drop out."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.array(pairs, np.int64).reshape(-1, 2)


def composite_strip(ten: np.ndarray, twenty: np.ndarray, clear20: np.ndarray, offsets: np.ndarray,
                    day_of: np.ndarray, v0: float, u0: float, bilinear: bool, quantile: float,
                    out: np.ndarray, land: np.ndarray) -> None:
    """ten (T, 4, R, W) uint16; twenty (T, 7, Rc, Wc) uint16: six 20 m bands, then the SCL; clear20
    (T, Rc, Wc) bool; offsets (T, 10) float32 in BANDS order; day_of (T,) int64, non-decreasing (scenes
    in time order, so a day's granules are neighbours); v0, u0: 20 m coordinates of the strip's first
    pixel centre. Writes out (11, R, W) uint16 (the composite in BANDS order, then the clear-day
    count) and adds to land (T, 2): clear land pixels, and those <= 0 in B02 after the offset."""
    _composite_rows(ten, twenty, clear20, offsets, day_of, v0, u0, bilinear, quantile, out, land,
                    sorting_network(ten.shape[0]))


@numba.njit(cache=True, nogil=True)
def _composite_rows(ten, twenty, clear20, offsets, day_of, v0, u0, bilinear, quantile, out, land,
                    pairs):  # pragma: no cover - compiled
    """Row by row: every scene's observations of a row gathered into (T, 10, W) (+inf where not
    clear), sorted along T by the network (branch-free min / max over the row: the CPU's vector units
    do W pixels at once; sorting each pixel's few values on its own mispredicts a branch at every
    comparison), then each pixel's quantile read off its clear count."""
    n_scenes, rows, cols = ten.shape[0], ten.shape[2], ten.shape[3]
    row = np.empty((n_scenes, 10, cols), np.float32)
    c_own = np.empty(cols, np.int64)  # per column: the 20 m column it lies in, the one left of it, the weight
    c_left = np.empty(cols, np.int64)
    fx_of = np.empty(cols, np.float64)
    for i in range(cols):
        u = u0 + 0.5 * i
        c_own[i] = int(math.floor(u + 0.5))
        c_left[i] = int(math.floor(u))
        fx_of[i] = u - c_left[i]
    count = np.empty(cols, np.int64)
    last_day = np.empty(cols, np.int64)  # the day of the pixel's last clear observation
    low = np.empty(cols, np.int64)  # per pixel: the two order statistics and the weight between them
    high = np.empty(cols, np.int64)
    frac = np.empty(cols, np.float32)
    inf = np.float32(np.inf)
    for j in range(rows):
        v = v0 + 0.5 * j
        r_own = int(math.floor(v + 0.5))
        r0 = int(math.floor(v))
        fy = v - r0
        for i in range(cols):
            count[i] = 0
            last_day[i] = -1
        for t in range(n_scenes):
            for i in range(cols):
                cn = c_own[i]
                blue = ten[t, 0, j, i]
                scl = twenty[t, 6, r_own, cn]
                if (scl == 4 or scl == 5) and blue != 0:
                    land[t, 0] += 1
                    if np.float32(blue) + offsets[t, 0] <= 0:
                        land[t, 1] += 1
                clear = (clear20[t, r_own, cn] and blue != 0 and ten[t, 1, j, i] != 0
                         and ten[t, 2, j, i] != 0 and ten[t, 3, j, i] != 0)
                if clear and day_of[t] == last_day[i]:
                    clear = False  # the day's first clear overpass already counts
                if not clear:
                    for s in range(10):
                        row[t, s, i] = inf
                    continue
                count[i] += 1
                last_day[i] = day_of[t]
                for k in range(4):
                    s = SLOTS_10M[k]
                    row[t, s, i] = np.float32(ten[t, k, j, i]) + offsets[t, s]
                if bilinear:
                    c0, fx = c_left[i], fx_of[i]
                    w00 = (1.0 - fy) * (1.0 - fx) if clear20[t, r0, c0] else 0.0
                    w01 = (1.0 - fy) * fx if clear20[t, r0, c0 + 1] else 0.0
                    w10 = fy * (1.0 - fx) if clear20[t, r0 + 1, c0] else 0.0
                    w11 = fy * fx if clear20[t, r0 + 1, c0 + 1] else 0.0
                    norm = w00 + w01 + w10 + w11
                    for k in range(6):
                        total = (w00 * twenty[t, k, r0, c0] + w01 * twenty[t, k, r0, c0 + 1]
                                 + w10 * twenty[t, k, r0 + 1, c0] + w11 * twenty[t, k, r0 + 1, c0 + 1])
                        s = SLOTS_20M[k]
                        row[t, s, i] = np.float32(math.floor(total / norm + 0.5)) + offsets[t, s]
                else:
                    for k in range(6):
                        s = SLOTS_20M[k]
                        row[t, s, i] = np.float32(twenty[t, k, r_own, cn]) + offsets[t, s]
        for p in range(pairs.shape[0]):
            a, b = pairs[p, 0], pairs[p, 1]
            for s in range(10):
                lo_row, hi_row = row[a, s], row[b, s]
                for i in range(cols):
                    x, y = lo_row[i], hi_row[i]
                    lo_row[i] = min(x, y)
                    hi_row[i] = max(x, y)
        for i in range(cols):
            days = count[i]
            out[10, j, i] = min(days, MAX_COUNT)
            position = quantile * max(days - 1, 0)
            low[i] = int(math.floor(position))
            high[i] = min(low[i] + 1, max(days - 1, 0))
            frac[i] = np.float32(position - low[i])
        for s in range(10):
            for i in range(cols):
                if count[i] == 0:
                    out[s, j, i] = 0
                    continue
                a, b = row[low[i], s, i], row[high[i], s, i]
                value = np.rint(a + (b - a) * frac[i])  # numpy's round: half to even
                out[s, j, i] = min(max(value, np.float32(1.0)), np.float32(MAX_DN))
