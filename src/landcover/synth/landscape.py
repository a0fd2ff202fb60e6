"""Class maps with the spatial structure of European landscapes.

Each tile is built in layers, later layers overriding earlier ones, in the order a map-maker
would: relief -> natural cover (forest stands, grassland, shrubland, rock) -> agricultural parcels
-> water (a meandering river, lakes) with wetland margins -> settlements (a dense core whose
density falls with distance from the city centre, villages) -> quarries -> road network (street
grid in built-up areas, arterials crossing the tile). Alongside the class map it returns the
within-class state the spectral model needs (crop calendar per parcel, vigour, elevation).

A tile is drawn in two steps so that it can be rendered block by block in flat memory: `plan`
makes the tile's few global decisions (river and road courses, villages, quarries, parcel size),
and `render` evaluates any window of the tile from the plan and position-keyed noise
(`noise.py`). Every threshold is a quantile of the field's known distribution, never of the
pixels in hand, so a window's classes do not depend on the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy import ndimage

from landcover.classes import (
    AGRICULTURAL,
    BARE,
    BROADLEAVED,
    CONIFEROUS,
    GRASSLAND,
    ROADS,
    SHRUBS,
    URBAN,
    WATER,
    WETLANDS,
)
from landcover.synth.noise import SmoothNoise, Window, chunked, normal_quantile, white_noise

# natural cover weights: broadleaved, coniferous, grassland, shrubs, bare
NATURAL_CLASSES = np.array([BROADLEAVED, CONIFEROUS, GRASSLAND, SHRUBS, BARE], dtype=np.uint8)
ZONE_NATURAL_MIX = {
    "atlantic": (0.35, 0.15, 0.38, 0.09, 0.03),
    "continental": (0.42, 0.28, 0.22, 0.05, 0.03),
    "mediterranean": (0.18, 0.14, 0.18, 0.40, 0.10),
    "alpine": (0.20, 0.42, 0.20, 0.06, 0.12),
    "boreal": (0.22, 0.58, 0.12, 0.05, 0.03),
    "pannonian": (0.35, 0.08, 0.40, 0.12, 0.05),
}
ZONE_AGRI_SHARE = {
    "atlantic": 0.40, "continental": 0.45, "mediterranean": 0.35,
    "alpine": 0.15, "boreal": 0.18, "pannonian": 0.55,
}
ZONE_WETLAND_PROB = {
    "atlantic": 0.6, "continental": 0.45, "mediterranean": 0.35,
    "alpine": 0.35, "boreal": 0.8, "pannonian": 0.5,
}
ZONE_RELIEF = {  # elevation amplitude (m) of the relief field
    "atlantic": 150, "continental": 250, "mediterranean": 450,
    "alpine": 1400, "boreal": 120, "pannonian": 80,
}
# crop calendars (see spectra.CROP_GREEN): 0 winter cereal, 1 summer crop, 2 rapeseed, 3 orchard/vineyard
ZONE_CROP_MIX = {
    "atlantic": (0.45, 0.30, 0.20, 0.05),
    "continental": (0.40, 0.35, 0.20, 0.05),
    "mediterranean": (0.40, 0.20, 0.05, 0.35),
    "alpine": (0.35, 0.35, 0.10, 0.20),
    "boreal": (0.55, 0.25, 0.15, 0.05),
    "pannonian": (0.35, 0.45, 0.15, 0.05),
}


class Field(IntEnum):
    """One independent noise field each (the last word of its key)."""

    RELIEF = 0
    RELIEF_FINE = 1
    AGRI = 2
    PARCELS = 3
    RIVER_WIDTH = 4
    LAKE = 5
    WET_MARGIN = 6
    MARSH = 7
    SETTLEMENT = 8
    VIGOUR = 9
    VIGOUR_GRAIN = 10
    NATURAL = 20  # + class index 0..4


PAD = 24  # halo: wetland margins reach up to 20 px from water, street dilation 2 px
MAX_RIVER_WIDTH = 12.0
MAX_WET_MARGIN = 20.0
# the marsh field is unit noise minus 3 x `high` (about N(0.5, 0.25)): its 98.5 % point
MARSH_THRESHOLD = -1.5 + 1.25 * normal_quantile(0.985)


@dataclass
class Landscape:
    labels: np.ndarray      # (H, W) uint8 class codes 1..10 (unlabelled added later)
    elevation: np.ndarray   # (H, W) float32 metres above the relief's lowest possible valley
    vigour: np.ndarray      # (H, W) float32 ~N(0, 1): within-class variation (density, moisture)
    crop: np.ndarray        # (H, W) int8 crop calendar id on agricultural pixels, -1 elsewhere
    parcel_soil: np.ndarray  # (H, W) float32 soil brightness factor per parcel/patch


@dataclass(frozen=True)
class Path:
    """A river or road course: the integer pixels it passes through, and its half-width."""

    pixels: np.ndarray  # (N, 2) int64 row, col; may leave the tile
    width: float


@dataclass(frozen=True)
class LandscapePlan:
    key: tuple[int, ...]
    size: tuple[int, int]
    zone: str
    urban_centre_px: tuple[float, float]
    urban_radius_px: float
    parcel_px: float
    river: Path | None
    lake_share: float | None
    wet_margin_px: float | None
    marsh: bool
    villages: tuple[tuple[float, float, float], ...]  # row, col, radius
    quarries: tuple[tuple[float, float, float, float, float], ...]  # row, col, half-length, half-width, angle
    street_angle: float
    street_spacing: float
    arterials: tuple[Path, ...]

    def noise(self, field: int, scale_px: float) -> SmoothNoise:
        return SmoothNoise((*self.key, int(field)), scale_px)


def _trace(points: np.ndarray) -> np.ndarray:
    """Unique integer pixels along a polyline given as (N, 2) row/col points."""
    seg = np.diff(points, axis=0)
    n = np.maximum(np.ceil(np.abs(seg).max(axis=1) * 2).astype(int), 1)
    dense = np.concatenate(
        [points[i] + np.outer(np.linspace(0, 1, k, endpoint=False), seg[i]) for i, k in enumerate(n)]
        + [points[-1:]]
    )
    return np.unique(np.round(dense).astype(np.int64), axis=0)


def _meander(shape: tuple[int, int], rng: np.random.Generator, wiggle: float) -> np.ndarray:
    """A path entering at one edge and wandering across the tile (rivers, arterial roads)."""
    h, w = shape
    side = rng.integers(4)
    start = {
        0: (0.0, rng.uniform(0, w)), 1: (h - 1.0, rng.uniform(0, w)),
        2: (rng.uniform(0, h), 0.0), 3: (rng.uniform(0, h), w - 1.0),
    }[int(side)]
    heading = {0: np.pi / 2, 1: -np.pi / 2, 2: 0.0, 3: np.pi}[int(side)] + rng.normal(0, 0.3)
    step = max(h, w) / 60
    pts = [start]
    turn = 0.0
    for _ in range(400):
        turn = 0.8 * turn + rng.normal(0, wiggle)
        heading += turn
        r, c = pts[-1]
        r, c = r + step * np.sin(heading), c + step * np.cos(heading)
        pts.append((r, c))
        if not (-step <= r <= h + step and -step <= c <= w + step):
            break
    return np.array(pts)


def plan(
    size: tuple[int, int],
    zone: str,
    rng: np.random.Generator,
    key: tuple[int, ...],
    urban_centre_px: tuple[float, float],
    urban_radius_px: float,
) -> LandscapePlan:
    """The tile's global decisions, drawn from `rng` in a fixed order; `key` seeds its noise fields."""
    h, w = size
    parcel_px = rng.uniform(18, 32)  # parcels 180-320 m across
    river = Path(_trace(_meander(size, rng, wiggle=0.12)), rng.uniform(1.5, 4.5)) if rng.random() < 0.7 else None
    lake_share = rng.uniform(0.01, 0.05) if rng.random() < 0.5 else None
    wet_margin = rng.uniform(2, 6) if rng.random() < ZONE_WETLAND_PROB[zone] else None
    marsh = bool(rng.random() < 0.5 * ZONE_WETLAND_PROB[zone])
    villages = tuple((rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, 14)) for _ in range(rng.poisson(1.5)))
    quarries = tuple(
        (rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 14), rng.uniform(4, 14), rng.uniform(0, np.pi))
        for _ in range(rng.poisson(1.0))
    )
    angle, spacing = rng.uniform(0, np.pi), rng.uniform(8, 15)
    arterials = tuple(
        Path(_trace(_meander(size, rng, wiggle=0.03)), rng.uniform(0.5, 1.2)) for _ in range(1 + rng.poisson(1.5))
    )
    return LandscapePlan(
        key, size, zone, urban_centre_px, urban_radius_px, parcel_px, river, lake_share, wet_margin, marsh,
        villages, quarries, angle, spacing, arterials,
    )


def _distance(path: Path, window: Window, halo: int) -> np.ndarray:
    """Distance (px) of every pixel of `window` to the path, exact up to `halo` px (larger beyond)."""
    region = window.pad(halo)
    r, c = path.pixels[:, 0], path.pixels[:, 1]
    inside = (r >= region.r0) & (r < region.r1) & (c >= region.c0) & (c < region.c1)
    if not inside.any():
        return np.full(window.shape, np.inf)
    free = np.ones(region.shape, dtype=bool)
    free[r[inside] - region.r0, c[inside] - region.c0] = False
    return ndimage.distance_transform_edt(free)[window.inner(region)]


def _parcels(p: LandscapePlan, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop calendar, meadow flag and soil brightness of the parcel under every pixel.

    Parcels are the Voronoi cells of one jittered seed per `parcel_px` grid cell, each cell's seed
    and attributes drawn from position-keyed noise. The nearest seed is always within two cells,
    so searching the 5 x 5 neighbourhood is exact."""
    s = p.parcel_px
    rr, cc = window.grid()
    ir, jc = np.floor(rr[:, 0] / s).astype(np.int64), np.floor(cc[0] / s).astype(np.int64)
    i0, j0 = int(ir[0]) - 2, int(jc[0]) - 2
    cells = chunked((*p.key, int(Field.PARCELS)), (i0, int(ir[-1]) + 3), (j0, int(jc[-1]) + 3),
                    depth=5, kind="uniform")
    seed_r = (np.arange(i0, i0 + cells.shape[1])[:, None] + cells[0]) * s
    seed_c = (np.arange(j0, j0 + cells.shape[2])[None, :] + cells[1]) * s
    ir, jc = ir - i0, jc - j0
    best = np.full(window.shape, np.inf)
    best_i = np.zeros(window.shape, dtype=np.int64)
    best_j = np.zeros(window.shape, dtype=np.int64)
    for di in range(-2, 3):
        for dj in range(-2, 3):
            ci, cj = np.ix_(ir + di, jc + dj)
            d = (rr - seed_r[ci, cj]) ** 2 + (cc - seed_c[ci, cj]) ** 2
            closer = d < best
            best = np.where(closer, d, best)
            best_i = np.where(closer, ci, best_i)
            best_j = np.where(closer, cj, best_j)
    mix = np.cumsum(ZONE_CROP_MIX[p.zone])
    crop_of_cell = np.minimum(np.searchsorted(mix / mix[-1], cells[2], side="right"), 3)
    # some lowland parcels are meadows/pasture: grassland beside cropland (a real confusion)
    meadow_of_cell = cells[3] < (0.35 if p.zone in ("atlantic", "alpine") else 0.15)
    soil_of_cell = 0.75 + 0.5 * cells[4]
    return (crop_of_cell[best_i, best_j], meadow_of_cell[best_i, best_j],
            soil_of_cell[best_i, best_j].astype(np.float32))


def relief(p: LandscapePlan, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (m) and its position in the relief's range, `high` in 0..1."""
    scale = max(p.size)
    z = p.noise(Field.RELIEF, scale / 3)(window) + 0.25 * p.noise(Field.RELIEF_FINE, scale / 12)(window)
    z /= np.float32(1.0625**0.5)
    high = np.clip(0.5 + z / 4, 0, 1)  # +-2 sigma spans the relief
    return high * np.float32(4 * ZONE_RELIEF[p.zone]), high


def snowline(p: LandscapePlan) -> float | None:
    """Winter snowline (m): the lowest 35 % of alpine terrain stays clear; boreal lowlands are white."""
    if p.zone == "alpine":
        return float(4 * ZONE_RELIEF[p.zone] * np.clip(0.5 + normal_quantile(0.35) / 4, 0, 1))
    if p.zone == "boreal":
        return -200.0
    return None


def render(p: LandscapePlan, window: Window) -> Landscape:
    """The landscape over `window`, identical whichever window of the tile it is cut from."""
    outer = window.pad(PAD)
    zone = p.zone
    scale = max(p.size)
    rr, cc = outer.grid()
    elevation, high = relief(p, outer)
    rel = ZONE_RELIEF[zone]

    # --- natural cover: stands of a few hundred metres, altitude favouring conifers then rock
    mix = np.log(np.asarray(ZONE_NATURAL_MIX[zone]))
    scores = np.stack([m + 1.2 * p.noise(Field.NATURAL + k, 22)(outer) for k, m in enumerate(mix)])
    if rel > 300:
        scores[1] += 2.5 * np.clip(high - 0.45, 0, None)   # conifers upslope
        scores[4] += 6.0 * np.clip(high - 0.8, 0, None)    # rock and scree on ridges
        scores[0] -= 2.0 * np.clip(high - 0.5, 0, None)
    labels = NATURAL_CLASSES[np.argmax(scores, axis=0)]

    # --- agriculture: parcels in the lowlands
    agri_field = p.noise(Field.AGRI, scale / 5)(outer) - 0.8 * (high - 0.5) * (rel > 300)
    agri_mask = agri_field > normal_quantile(1 - ZONE_AGRI_SHARE[zone])
    crop_px, meadow_px, parcel_soil = _parcels(p, outer)
    agri_px = agri_mask & ~meadow_px
    labels = np.where(agri_px, AGRICULTURAL, labels)
    labels = np.where(agri_mask & meadow_px, GRASSLAND, labels)
    crop = np.where(agri_px, crop_px, -1).astype(np.int8)

    # --- water: a meandering river, lakes in hollows, wetland margins
    water = np.zeros(outer.shape, dtype=bool)
    if p.river is not None:
        width = np.clip(p.river.width * (1 + 0.3 * p.noise(Field.RIVER_WIDTH, 30)(outer)), 0, MAX_RIVER_WIDTH)
        water |= _distance(p.river, outer, int(MAX_RIVER_WIDTH) + 1) <= width
    if p.lake_share is not None:
        lake_field = p.noise(Field.LAKE, 16)(outer) - 0.02 * high * rel / 100
        water |= lake_field > normal_quantile(1 - p.lake_share)
    if p.wet_margin_px is not None and water.any():
        dist = ndimage.distance_transform_edt(~water)
        margin = np.clip(p.wet_margin_px * (1 + 0.6 * p.noise(Field.WET_MARGIN, 8)(outer)), 0, MAX_WET_MARGIN)
        labels = np.where((dist > 0) & (dist <= margin) & (high < 0.7), WETLANDS, labels)
    if p.marsh:  # fens/marshes in flat low ground
        labels = np.where(p.noise(Field.MARSH, 10)(outer) - 3 * high > MARSH_THRESHOLD, WETLANDS, labels)
    labels = np.where(water, WATER, labels)

    # --- settlements: density falls with distance from the city centre; villages elsewhere
    dist_c = np.hypot(rr - p.urban_centre_px[0], cc - p.urban_centre_px[1]) / max(p.urban_radius_px, 1)
    urban_field = np.exp(-(dist_c**2)) + 0.35 * p.noise(Field.SETTLEMENT, 6)(outer)
    for vr, vc, radius in p.villages:
        urban_field += 0.9 * np.exp(-(((rr - vr) ** 2 + (cc - vc) ** 2) / radius**2))
    urban = (urban_field > 0.6) & ~water
    labels = np.where(urban, URBAN, labels)

    # --- quarries and bare sites near settlements
    for qr, qc, qh, qw, ang in p.quarries:
        u = (rr - qr) * np.cos(ang) + (cc - qc) * np.sin(ang)
        v = -(rr - qr) * np.sin(ang) + (cc - qc) * np.cos(ang)
        labels = np.where((np.abs(u) < qh) & (np.abs(v) < qw) & ~water, BARE, labels)

    # --- roads: street grid in built-up areas (blocks of 80-150 m), arterials across the tile
    theta, spacing = p.street_angle, p.street_spacing
    u = rr * np.cos(theta) + cc * np.sin(theta)
    v = -rr * np.sin(theta) + cc * np.cos(theta)
    roads = ((np.mod(u, spacing) < 1.0) | (np.mod(v, spacing * 1.4) < 1.0)) & ndimage.binary_dilation(
        urban, iterations=2
    )
    for road in p.arterials:
        roads |= _distance(road, outer, 2) <= road.width
    labels = np.where(roads, ROADS, labels)  # roads cross water on bridges

    vigour = p.noise(Field.VIGOUR, 4)(outer) * 0.7 + white_noise((*p.key, int(Field.VIGOUR_GRAIN)), outer)[0] * 0.3
    inner = window.inner(outer)
    return Landscape(labels[inner].astype(np.uint8), elevation[inner].astype(np.float32), vigour[inner],
                     crop[inner], parcel_soil[inner])
