"""Surface reflectance from class maps: linear spectral mixing with seasonal abundances.

Each pixel is a mixture of endmember spectra (green vegetation, dry vegetation, soil, water,
impervious, asphalt, conifer canopy, rock, snow, shade). The class, season, climate zone and
crop calendar set the mixture; within-class vigour perturbs it. Values are approximate
Sentinel-2 L2A surface reflectances for the ten bands in contract order (B02 B03 B04 B05 B06 B07
B08 B8A B11 B12); docs/synthetic-data.md gives the sources.
"""

from __future__ import annotations

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
from landcover.synth.landscape import Landscape
from landcover.synth.noise import Window, white_noise

ENDMEMBERS = ("green", "dry", "soil", "water", "impervious", "asphalt", "conifer", "rock", "snow", "shade")
#                         B02    B03    B04    B05    B06    B07    B08    B8A    B11    B12
SPECTRA = np.array([
    [0.030, 0.065, 0.035, 0.110, 0.300, 0.380, 0.420, 0.440, 0.210, 0.095],  # green leaves
    [0.070, 0.095, 0.125, 0.165, 0.215, 0.245, 0.270, 0.290, 0.360, 0.255],  # dry grass/litter
    [0.085, 0.120, 0.160, 0.190, 0.220, 0.240, 0.255, 0.270, 0.330, 0.280],  # bare soil
    [0.060, 0.050, 0.030, 0.020, 0.015, 0.012, 0.010, 0.009, 0.005, 0.003],  # clear water
    [0.120, 0.130, 0.140, 0.150, 0.160, 0.170, 0.180, 0.185, 0.215, 0.195],  # roofs/concrete
    [0.065, 0.075, 0.085, 0.092, 0.100, 0.105, 0.110, 0.115, 0.135, 0.125],  # asphalt
    [0.020, 0.040, 0.022, 0.070, 0.175, 0.225, 0.255, 0.265, 0.120, 0.050],  # needle canopy
    [0.150, 0.180, 0.200, 0.215, 0.235, 0.245, 0.255, 0.265, 0.300, 0.255],  # rock
    [0.850, 0.840, 0.820, 0.810, 0.790, 0.770, 0.740, 0.720, 0.100, 0.080],  # snow
    [0.010, 0.012, 0.010, 0.012, 0.020, 0.025, 0.028, 0.030, 0.015, 0.008],  # shadow
], dtype=np.float32)
E = {name: i for i, name in enumerate(ENDMEMBERS)}
SEASON_INDEX = {"spring": 0, "summer": 1, "autumn": 2, "winter": 3}
PSF_SIGMA = 0.55
PSF_HALO = int(4.0 * PSF_SIGMA + 0.5)  # scipy truncates the Gaussian at 4 sigma


def _mix(**fractions: float) -> np.ndarray:
    v = np.zeros(len(ENDMEMBERS), dtype=np.float32)
    for k, x in fractions.items():
        v[E[k]] = x
    return v / v.sum()


# Grassland follows the rains: green all year in the Atlantic, summer-brown in the Mediterranean
# (green again in winter and spring), dormant in continental and cold winters.
GRASS = {
    "atlantic": [_mix(green=.75, dry=.12, soil=.13), _mix(green=.62, dry=.25, soil=.13),
                 _mix(green=.6, dry=.27, soil=.13), _mix(green=.55, dry=.3, soil=.15)],
    "mediterranean": [_mix(green=.72, dry=.15, soil=.13), _mix(green=.12, dry=.68, soil=.2),
                      _mix(green=.3, dry=.5, soil=.2), _mix(green=.6, dry=.25, soil=.15)],
    "continental": [_mix(green=.68, dry=.18, soil=.14), _mix(green=.58, dry=.28, soil=.14),
                    _mix(green=.38, dry=.46, soil=.16), _mix(green=.2, dry=.62, soil=.18)],
    "cold": [_mix(green=.4, dry=.42, soil=.18), _mix(green=.78, dry=.12, soil=.1),
             _mix(green=.38, dry=.47, soil=.15), _mix(green=.12, dry=.68, soil=.2)],
}
# Crop calendars (spring, summer, autumn, winter).
CROPS = [
    # winter cereal: green in spring, harvested stubble in summer, ploughed/sown in autumn
    [_mix(green=.85, soil=.15), _mix(dry=.6, soil=.4), _mix(soil=.9, dry=.1), _mix(green=.3, soil=.7)],
    # summer crop (maize, sunflower): bare until late spring, peak in summer
    [_mix(soil=.92, green=.08), _mix(green=.88, soil=.12), _mix(dry=.6, soil=.4), _mix(soil=.85, dry=.15)],
    # rapeseed: sown in late summer, green through winter, flowers in spring
    [_mix(green=.7, dry=.15, soil=.15), _mix(dry=.5, soil=.5), _mix(green=.5, soil=.5), _mix(green=.5, soil=.5)],
    # orchards/vineyards/olives: rows of trees over soil, little seasonal change
    [_mix(green=.38, soil=.55, shade=.07), _mix(green=.45, soil=.45, shade=.1),
     _mix(green=.35, dry=.1, soil=.48, shade=.07), _mix(green=.2, dry=.15, soil=.6, shade=.05)],
]


def class_mixture(code: int, season: int, zone: str) -> np.ndarray:
    """Mean endmember abundances of a class in a season and zone."""
    med = zone == "mediterranean"
    cold = zone in ("alpine", "boreal")
    if code == ROADS:
        return _mix(asphalt=.72, impervious=.12, green=.08, soil=.08)
    if code == URBAN:
        g = (.12, .18, .12, .06)[season]
        return _mix(impervious=.6, asphalt=.1, shade=.1, green=g, dry=.14 - g / 2 + .06, soil=.04)
    if code == BARE:
        return _mix(soil=.5, rock=.45, dry=.05)
    if code == WETLANDS:
        return [_mix(water=.4, green=.42, dry=.1, soil=.08), _mix(water=.2, green=.62, dry=.1, soil=.08),
                _mix(water=.32, green=.28, dry=.32, soil=.08), _mix(water=.5, dry=.4, soil=.1)][season]
    if code == WATER:
        return [_mix(water=.95, soil=.05), _mix(water=.93, green=.03, soil=.04),
                _mix(water=.94, soil=.06), _mix(water=.95, soil=.05)][season]
    if code == GRASSLAND:
        key = "mediterranean" if med else "cold" if cold else "continental" if zone in (
            "continental", "pannonian") else "atlantic"
        return GRASS[key][season]
    if code == BROADLEAVED:
        if med:  # evergreen oaks keep much of their canopy
            return [_mix(green=.7, shade=.18, dry=.12), _mix(green=.72, shade=.18, dry=.1),
                    _mix(green=.6, shade=.18, dry=.22), _mix(green=.5, shade=.2, dry=.3)][season]
        return [_mix(green=.62, shade=.14, dry=.24), _mix(green=.84, shade=.16),
                _mix(green=.32, dry=.52, shade=.16), _mix(dry=.5, soil=.17, shade=.28, green=.05)][season]
    if code == CONIFEROUS:
        return [_mix(conifer=.8, shade=.2), _mix(conifer=.85, shade=.15),
                _mix(conifer=.8, shade=.2), _mix(conifer=.72, shade=.28)][season]
    if code == SHRUBS:
        if med:
            return [_mix(green=.42, dry=.28, soil=.3), _mix(green=.26, dry=.42, soil=.32),
                    _mix(green=.3, dry=.38, soil=.32), _mix(green=.45, dry=.25, soil=.3)][season]
        return [_mix(green=.45, dry=.35, soil=.2), _mix(green=.55, dry=.27, soil=.18),
                _mix(green=.4, dry=.42, soil=.18), _mix(green=.3, dry=.5, soil=.2)][season]
    if code == AGRICULTURAL:  # per-parcel crop calendars override this mean
        return CROPS[0][season]
    raise ValueError(f"unknown class code {code}")


def reflectance(
    land: Landscape,
    outer: Window,
    window: Window,
    season: str,
    zone: str,
    gain: float,
    haze: float,
    snowline_m: float | None,
    noise_key: tuple[int, ...],
    phenology_shift: float = 0.0,
) -> np.ndarray:
    """(10, H, W) float32 surface reflectance of `window` for one season mosaic.

    `land` covers `outer`, `window` padded by at least `PSF_HALO` px for the point-spread blur.
    `phenology_shift` in [-0.5, 0.5] moves the mosaic's vegetation state towards the previous (<0)
    or next (>0) season: latitude, altitude and the compositing window shift phenology from city to
    city, so one season's spectra are not a fixed fingerprint of a class. Mixing is an explicit
    float64 sum in a fixed order: a BLAS matrix product picks its kernel by CPU, and the bytes
    would then depend on the machine."""
    s = SEASON_INDEX[season]
    other = (s + (1 if phenology_shift > 0 else -1)) % 4
    w = np.float32(min(abs(phenology_shift), 0.5))

    def mixtures(idx: int) -> tuple[np.ndarray, np.ndarray]:
        table = np.stack([np.zeros(len(ENDMEMBERS), np.float32)] + [class_mixture(c, idx, zone) for c in range(1, 11)])
        return table, np.stack([cal[idx] for cal in CROPS])

    (table, crop_table), (table_o, crop_table_o) = mixtures(s), mixtures(other)
    table, crop_table = (1 - w) * table + w * table_o, (1 - w) * crop_table + w * crop_table_o
    labels, vigour = land.labels, land.vigour
    ab = np.take(table.T, labels, axis=1)  # (E, H, W)
    agri = (land.crop >= 0) & (labels == AGRICULTURAL)  # later layers (roads, towns, water) override parcels
    if agri.any():
        ab[:, agri] = crop_table[land.crop[agri]].T

    # within-class variation: vigour moves mass between green and dry/soil; soil brightness varies
    shift = np.clip(np.float32(0.12) * vigour, -0.25, 0.25)
    greenish = ab[E["green"]] + ab[E["conifer"]]
    move = shift * np.minimum(greenish + 0.05, ab[E["dry"]] + ab[E["soil"]] + 0.05)
    ab[E["green"]] += np.where(ab[E["green"]] > 0, move, 0)
    ab[E["conifer"]] += np.where((ab[E["green"]] == 0) & (ab[E["conifer"]] > 0), move, 0)
    ab[E["dry"]] -= move * 0.5
    ab[E["soil"]] -= move * 0.5
    ab = np.clip(ab, 0, None)
    ab /= ab.sum(axis=0) + np.float32(1e-9)

    refl = np.empty((len(SPECTRA[0]),) + labels.shape, dtype=np.float32)
    present = [ab[e].astype(np.float64) for e in range(len(ENDMEMBERS)) if ab[e].any()]
    weights = [SPECTRA[e].astype(np.float64) for e in range(len(ENDMEMBERS)) if ab[e].any()]
    acc = np.empty(labels.shape, dtype=np.float64)
    for b in range(refl.shape[0]):
        acc.fill(0.0)
        for a, spectrum in zip(present, weights, strict=True):
            acc += a * spectrum[b]
        refl[b] = acc
    refl *= 1 + ab[E["soil"]] * (land.parcel_soil - 1)  # moist/dark vs dry/bright soils

    if snowline_m is not None:  # snow cover on cold winters, above a noisy snowline
        snow = np.clip((land.elevation - snowline_m) / 150 + 0.3 * vigour, 0, 1)
        snow = np.where(labels == CONIFEROUS, snow * 0.35, snow)  # canopy stays visible
        snow = np.where(labels == WATER, np.clip(snow + 0.3, 0, 1), snow)  # ice
        refl = refl * (1 - snow) + SPECTRA[E["snow"]][:, None, None] * snow

    # mixed pixels at boundaries: the sensor's point-spread function
    refl = ndimage.gaussian_filter(refl, sigma=(0, PSF_SIGMA, PSF_SIGMA))[(slice(None), *window.inner(outer))]
    # illumination and haze (path radiance strongest in the blue)
    haze_profile = np.array([0.035, 0.028, 0.022, 0.018, 0.013, 0.011, 0.009, 0.009, 0.004, 0.002], np.float32)
    refl = refl * np.float32(gain) + np.float32(haze) * haze_profile[:, None, None]
    # sensor noise: additive plus a little multiplicative
    noise = white_noise((*noise_key, 0), window, depth=refl.shape[0])
    grain = white_noise((*noise_key, 1), window, depth=refl.shape[0])
    refl = refl * (1 + np.float32(0.03) * noise) + np.float32(0.004) * grain
    return refl.astype(np.float32)
