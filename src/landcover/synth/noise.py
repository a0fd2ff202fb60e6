"""Random fields defined on a tile's whole pixel plane and evaluated in windows.

The generator renders a tile block by block so that its memory does not grow with the tile. For
that, every random field is a function of the pixel's position: white noise comes in fixed
256 x 256 chunks, each drawn from its own seed (the field's key and the chunk's index), and smooth
noise is white noise on a coarse lattice, Gaussian-filtered with a halo and interpolated
bilinearly. A value therefore does not depend on which window asks for it, or on the block size,
and the arithmetic is plain IEEE operations in a fixed order (no BLAS, no CPU-dependent kernel),
so the bytes are the same on every x86-64 CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

CHUNK = 256  # side of one independently seeded chunk of white noise
_OFFSET = 1 << 31  # SeedSequence takes non-negative words; chunk indices may be negative
_TRUNCATE = 4.0  # scipy's default Gaussian truncation


@dataclass(frozen=True)
class Window:
    """Rows r0..r1 and columns c0..c1 (end-exclusive) of the tile's pixel plane; may extend past
    the tile's edges (halos)."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1 - self.r0, self.c1 - self.c0

    def pad(self, n: int) -> Window:
        return Window(self.r0 - n, self.r1 + n, self.c0 - n, self.c1 + n)

    def inner(self, outer: Window) -> tuple[slice, slice]:
        """Slices that cut this window out of an array covering `outer`."""
        return (slice(self.r0 - outer.r0, self.r1 - outer.r0), slice(self.c0 - outer.c0, self.c1 - outer.c0))

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel row and column coordinates (float64, broadcastable (H, 1) and (1, W))."""
        return (np.arange(self.r0, self.r1, dtype=np.float64)[:, None],
                np.arange(self.c0, self.c1, dtype=np.float64)[None, :])


def _chunk(key: tuple[int, ...], ci: int, cj: int, depth: int, kind: str, dtype: type) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([*key, ci + _OFFSET, cj + _OFFSET]))
    shape = (depth, CHUNK, CHUNK)
    return rng.standard_normal(shape, dtype=dtype) if kind == "normal" else rng.random(shape, dtype=dtype)


def chunked(key: tuple[int, ...], rows: tuple[int, int], cols: tuple[int, int], depth: int = 1,
            kind: str = "normal", dtype: type = np.float64) -> np.ndarray:
    """(depth, H, W) white noise (`normal` or `uniform`) of the integer plane over rows r0..r1,
    cols c0..c1."""
    (r0, r1), (c0, c1) = rows, cols
    out = np.empty((depth, r1 - r0, c1 - c0), dtype=dtype)
    for ci in range(r0 // CHUNK, (r1 - 1) // CHUNK + 1):
        for cj in range(c0 // CHUNK, (c1 - 1) // CHUNK + 1):
            a0, a1 = max(r0, ci * CHUNK), min(r1, (ci + 1) * CHUNK)
            b0, b1 = max(c0, cj * CHUNK), min(c1, (cj + 1) * CHUNK)
            out[:, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = _chunk(key, ci, cj, depth, kind, dtype)[
                :, a0 - ci * CHUNK:a1 - ci * CHUNK, b0 - cj * CHUNK:b1 - cj * CHUNK]
    return out


def white_noise(key: tuple[int, ...], window: Window, depth: int = 1) -> np.ndarray:
    """(depth, H, W) float32 standard normal noise, one independent value per pixel."""
    return chunked(key, (window.r0, window.r1), (window.c0, window.c1), depth, dtype=np.float32)


@dataclass(frozen=True)
class SmoothNoise:
    """Zero-mean, unit-variance noise with features of about `scale_px` pixels.

    Built cheaply at low resolution (a lattice `factor` pixels apart) and interpolated, so large
    features cost little; normalised by the filter's known variance, not by the window's, so
    every window of the plane sees the same values."""

    key: tuple[int, ...]
    scale_px: float
    factor: int = field(init=False)
    sigma: float = field(init=False)
    radius: int = field(init=False)
    std: float = field(init=False)

    def __post_init__(self) -> None:
        factor = max(1, int(self.scale_px // 4))
        sigma = max(self.scale_px / factor, 0.5)
        radius = int(_TRUNCATE * sigma + 0.5)
        x = np.arange(-radius, radius + 1, dtype=np.float64)
        w = np.exp(-0.5 * (x / sigma) ** 2)
        w /= w.sum()
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "radius", radius)
        object.__setattr__(self, "std", float((w**2).sum()))  # sqrt of the 2-D variance (sum w^2)^2

    def __call__(self, window: Window) -> np.ndarray:
        f = self.factor
        ri = np.arange(window.r0, window.r1) // f  # lattice cell of each pixel row
        ci = np.arange(window.c0, window.c1) // f
        i0, i1 = int(ri[0]) - self.radius, int(ri[-1]) + 2 + self.radius
        j0, j1 = int(ci[0]) - self.radius, int(ci[-1]) + 2 + self.radius
        lattice = ndimage.gaussian_filter(chunked(self.key, (i0, i1), (j0, j1))[0], self.sigma,
                                          truncate=_TRUNCATE, mode="constant")
        ra = (np.arange(window.r0, window.r1) - ri * f) / f  # position inside the lattice cell
        ca = (np.arange(window.c0, window.c1) - ci * f) / f
        ri, ci = ri - i0, ci - j0
        rows = lattice[ri] * (1 - ra)[:, None] + lattice[ri + 1] * ra[:, None]
        out = rows[:, ci] * (1 - ca)[None, :] + rows[:, ci + 1] * ca[None, :]
        return (out / self.std).astype(np.float32)


def normal_quantile(p: float) -> float:
    """Standard normal quantile: thresholds that leave a share of a unit-variance field above."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)
