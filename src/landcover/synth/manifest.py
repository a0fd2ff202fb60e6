"""Manifest-only mode: the full dataset's shape (749 cities, 5,401 tiles) without pixels.

Real cities come first; beyond the embedded list, further urban areas are placed around them
(jittered coordinates, same climate zone, named "<City> area N"). Tiles per city follow a
heavy-tailed spread (a few metropolitan areas with dozens of tiles, many towns with a handful),
scaled so the total is exact. Each city also gets a nominal class mix (pixel shares), drawn from
its zone's landscape mix, so the split can balance class shares without reading pixels.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from landcover.dataset import City, write_cities
from landcover.io_utils import atomic_path
from landcover.synth.cities import CITY_TABLE
from landcover.synth.generate import SynthError

MANIFEST_FILE = "tiles.csv"
CLASS_MIX_FILE = "class_mix.csv"


def manifest_cities(n: int, rng: np.random.Generator) -> list[City]:
    base = [City(cid, name, country, lat, lon, zone) for cid, name, country, lat, lon, zone in CITY_TABLE]
    cities = list(base[:n])
    k = 0
    while len(cities) < n:
        src = base[k % len(base)]
        area = k // len(base) + 1
        cities.append(City(
            f"{src.city_id}A{area:02d}", f"{src.name}_area_{area}", src.country,
            round(src.lat + rng.uniform(-0.6, 0.6), 4), round(src.lon + rng.uniform(-0.9, 0.9), 4),
            src.climate_zone,
        ))
        k += 1
    return cities


def tiles_per_city(n_cities: int, n_tiles: int, rng: np.random.Generator) -> np.ndarray:
    """Heavy-tailed counts, at least one tile per city, summing exactly to n_tiles."""
    if n_tiles < n_cities:
        raise SynthError(f"--tiles ({n_tiles}) must be at least the number of cities ({n_cities})")
    raw = rng.lognormal(mean=0.0, sigma=0.75, size=n_cities)
    extra = n_tiles - n_cities
    share = raw / raw.sum() * extra
    counts = np.floor(share).astype(int)
    remainder = extra - counts.sum()
    counts[np.argsort(-(share - counts))[:remainder]] += 1
    return counts + 1


def write_manifest(out: Path, n_cities: int, n_tiles: int, seed: int) -> tuple[int, int]:
    """Write cities.csv, tiles.csv and class_mix.csv; returns (cities, tiles)."""
    if n_cities < 1:
        raise SynthError(f"--cities must be at least 1, got {n_cities}")
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cities = manifest_cities(n_cities, rng)
    counts = tiles_per_city(n_cities, n_tiles, rng)
    write_cities(out / "cities.csv", cities)
    from landcover.synth.landscape import ZONE_AGRI_SHARE, ZONE_NATURAL_MIX

    with atomic_path(out / MANIFEST_FILE) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["city_id", "tile_id"])
        for city, count in zip(cities, counts, strict=True):
            for t in range(count):
                w.writerow([city.city_id, f"t{t:03d}"])
    with atomic_path(out / CLASS_MIX_FILE) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["city_id"] + [f"class_{c}" for c in range(1, 11)])
        for city in cities:
            nat = np.array(ZONE_NATURAL_MIX[city.climate_zone])
            agri = ZONE_AGRI_SHARE[city.climate_zone]
            urban = rng.uniform(0.1, 0.3)
            mix = np.zeros(10)
            mix[[0, 1]] = urban * np.array([0.25, 0.75])
            mix[[7, 8, 5, 9, 2]] += (1 - urban - agri - 0.05) * nat
            mix[6] += agri
            mix[[3, 4]] += 0.05 * np.array([0.3, 0.7])
            mix *= rng.dirichlet(np.full(10, 20.0)) * 10
            w.writerow([city.city_id] + [f"{x / mix.sum():.5f}" for x in mix])
    return len(cities), int(counts.sum())
