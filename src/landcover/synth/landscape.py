"""Class maps with the spatial structure of European landscapes.

Each tile is built in layers, later layers overriding earlier ones, in the order a map-maker
would: relief -> natural cover (forest stands, grassland, shrubland, rock) -> agricultural parcels
-> water (a meandering river, lakes) with wetland margins -> settlements (a dense core whose
density falls with distance from the city centre, villages) -> quarries -> road network (street
grid in built-up areas, arterials crossing the tile). Alongside the class map it returns the
within-class state the spectral model needs (crop calendar per parcel, vigour, elevation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

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


@dataclass
class Landscape:
    labels: np.ndarray      # (H, W) uint8 class codes 1..10 (unlabelled added later)
    elevation: np.ndarray   # (H, W) float32 metres above the tile's lowest valley
    vigour: np.ndarray      # (H, W) float32 ~N(0, 1): within-class variation (density, moisture)
    crop: np.ndarray        # (H, W) int8 crop calendar id on agricultural pixels, -1 elsewhere
    parcel_soil: np.ndarray  # (H, W) float32 soil brightness factor per parcel/patch


def smooth_noise(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean unit-variance noise with features of about `scale_px` pixels, made cheaply at
    low resolution and upsampled so large tiles cost little."""
    factor = max(1, int(scale_px // 4))
    small = (shape[0] // factor + 3, shape[1] // factor + 3)
    field = ndimage.gaussian_filter(rng.standard_normal(small), sigma=max(scale_px / factor, 0.5))
    big = ndimage.zoom(field, factor, order=1)[: shape[0], : shape[1]]
    if big.shape != shape:  # zoom rounding on odd sizes
        big = np.pad(big, [(0, shape[0] - big.shape[0]), (0, shape[1] - big.shape[1])], mode="edge")
    big -= big.mean()
    return (big / (big.std() + 1e-9)).astype(np.float32)


def _polyline_distance(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to a polyline given as (N, 2) row/col points."""
    seg = np.diff(points, axis=0)
    n = np.maximum(np.ceil(np.abs(seg).max(axis=1) * 2).astype(int), 1)
    dense = np.concatenate(
        [points[i] + np.outer(np.linspace(0, 1, k, endpoint=False), seg[i]) for i, k in enumerate(n)]
        + [points[-1:]]
    )
    rr = np.clip(np.round(dense[:, 0]).astype(int), 0, shape[0] - 1)
    cc = np.clip(np.round(dense[:, 1]).astype(int), 0, shape[1] - 1)
    centre = np.ones(shape, dtype=bool)
    centre[rr, cc] = False
    return ndimage.distance_transform_edt(centre)


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


def make_landscape(
    size: tuple[int, int],
    zone: str,
    rng: np.random.Generator,
    urban_centre_px: tuple[float, float],
    urban_radius_px: float,
) -> Landscape:
    h, w = size
    scale = max(h, w)

    # --- relief
    elevation = smooth_noise(size, scale / 3, rng) * ZONE_RELIEF[zone]
    elevation += smooth_noise(size, scale / 12, rng) * ZONE_RELIEF[zone] * 0.25
    elevation -= elevation.min()
    relief = ZONE_RELIEF[zone]
    high = elevation / (elevation.max() + 1e-6)

    # --- natural cover: stands of a few hundred metres, altitude favouring conifers then rock
    mix = np.log(np.asarray(ZONE_NATURAL_MIX[zone]))
    scores = np.stack([m + 1.2 * smooth_noise(size, 22, rng) for m in mix])
    if relief > 300:
        scores[1] += 2.5 * np.clip(high - 0.45, 0, None)   # conifers upslope
        scores[4] += 6.0 * np.clip(high - 0.8, 0, None)    # rock and scree on ridges
        scores[0] -= 2.0 * np.clip(high - 0.5, 0, None)
    labels = NATURAL_CLASSES[np.argmax(scores, axis=0)]

    # --- agriculture: parcels (Voronoi cells, 150-400 m across) in the lowlands
    agri_field = smooth_noise(size, scale / 5, rng) - 0.8 * (high - 0.5) * (relief > 300)
    agri_mask = agri_field > np.quantile(agri_field, 1 - ZONE_AGRI_SHARE[zone])
    n_parcels = max(4, int(h * w / rng.uniform(18, 32) ** 2))
    seeds = np.column_stack([rng.uniform(0, h, n_parcels), rng.uniform(0, w, n_parcels)])
    rr, cc = np.mgrid[0:h, 0:w]
    _, parcel_id = cKDTree(seeds).query(np.column_stack([rr.ravel(), cc.ravel()]))
    parcel_id = parcel_id.reshape(size)
    crop_of_parcel = rng.choice(4, size=n_parcels, p=ZONE_CROP_MIX[zone])
    # some lowland parcels are meadows/pasture: grassland beside cropland (a real confusion)
    meadow = rng.random(n_parcels) < (0.35 if zone in ("atlantic", "alpine") else 0.15)
    agri_px = agri_mask & ~meadow[parcel_id]
    labels = np.where(agri_px, AGRICULTURAL, labels)
    labels = np.where(agri_mask & meadow[parcel_id], GRASSLAND, labels)
    crop = np.where(agri_px, crop_of_parcel[parcel_id], -1).astype(np.int8)
    parcel_soil = rng.uniform(0.75, 1.25, n_parcels)[parcel_id].astype(np.float32)

    # --- water: a meandering river, lakes in hollows, wetland margins
    water = np.zeros(size, dtype=bool)
    if rng.random() < 0.7:
        path = _meander(size, rng, wiggle=0.12)
        width = rng.uniform(1.5, 4.5) * (1 + 0.3 * smooth_noise(size, 30, rng))
        water |= _polyline_distance(size, path) <= width
    lake_field = smooth_noise(size, 16, rng) - 0.02 * high * relief / 100
    if rng.random() < 0.5:
        water |= lake_field > np.quantile(lake_field, 1 - rng.uniform(0.01, 0.05))
    if water.any() and rng.random() < ZONE_WETLAND_PROB[zone]:
        dist = ndimage.distance_transform_edt(~water)
        margin = rng.uniform(2, 6) * (1 + 0.6 * smooth_noise(size, 8, rng))
        wet = (dist > 0) & (dist <= margin) & (high < 0.7)
        labels = np.where(wet, WETLANDS, labels)
    if rng.random() < 0.5 * ZONE_WETLAND_PROB[zone]:  # fens/marshes in flat low ground
        marsh = smooth_noise(size, 10, rng) - 3 * high
        labels = np.where(marsh > np.quantile(marsh, 0.985), WETLANDS, labels)
    labels = np.where(water, WATER, labels)

    # --- settlements: density falls with distance from the city centre; villages elsewhere
    dist_c = np.hypot(rr - urban_centre_px[0], cc - urban_centre_px[1]) / max(urban_radius_px, 1)
    urban_field = np.exp(-(dist_c**2)) + 0.35 * smooth_noise(size, 6, rng)
    for _ in range(rng.poisson(1.5)):
        vr, vc = rng.uniform(0, h), rng.uniform(0, w)
        urban_field += 0.9 * np.exp(-(((rr - vr) ** 2 + (cc - vc) ** 2) / rng.uniform(6, 14) ** 2))
    urban = (urban_field > 0.6) & ~water
    labels = np.where(urban, URBAN, labels)

    # --- quarries and bare sites near settlements
    for _ in range(rng.poisson(1.0)):
        qr, qc = rng.uniform(0, h), rng.uniform(0, w)
        qh, qw, ang = rng.uniform(4, 14), rng.uniform(4, 14), rng.uniform(0, np.pi)
        u = (rr - qr) * np.cos(ang) + (cc - qc) * np.sin(ang)
        v = -(rr - qr) * np.sin(ang) + (cc - qc) * np.cos(ang)
        labels = np.where((np.abs(u) < qh) & (np.abs(v) < qw) & ~water, BARE, labels)

    # --- roads: street grid in built-up areas (blocks of 80-150 m), arterials across the tile
    theta = rng.uniform(0, np.pi)
    spacing = rng.uniform(8, 15)
    u = rr * np.cos(theta) + cc * np.sin(theta)
    v = -rr * np.sin(theta) + cc * np.cos(theta)
    streets = ((np.mod(u, spacing) < 1.0) | (np.mod(v, spacing * 1.4) < 1.0)) & ndimage.binary_dilation(
        urban, iterations=2
    )
    roads = streets
    for _ in range(1 + rng.poisson(1.5)):
        roads |= _polyline_distance(size, _meander(size, rng, wiggle=0.03)) <= rng.uniform(0.5, 1.2)
    labels = np.where(roads, ROADS, labels)  # roads cross water on bridges

    vigour = smooth_noise(size, 4, rng) * 0.7 + rng.standard_normal(size).astype(np.float32) * 0.3
    return Landscape(labels.astype(np.uint8), elevation.astype(np.float32), vigour, crop, parcel_soil)
