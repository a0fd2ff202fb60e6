"""Writes a synthetic dataset in the canonical layout (BRIEF section 2), deterministically.

Each tile is drawn from its own seed (dataset seed, city index, tile index), so a tile's pixels do
not depend on how many other tiles are made, and a rerun with the same options skips the tiles
that already exist. Tiles are written to a hidden temporary folder and renamed into place, so an
interrupted run never leaves a half-written tile.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from landcover.bands import BANDS, PIXEL_SIZE_M, REFLECTANCE_SCALE, SEASONS
from landcover.classes import CLASSES, colormap
from landcover.dataset import CLIMATE_ZONES, City, write_cities
from landcover.errors import LandcoverError
from landcover.geo import utm_epsg
from landcover.io_utils import atomic_write_json, atomic_write_text
from landcover.synth.cities import CITY_TABLE, ZONE_ORDER
from landcover.synth.landscape import make_landscape, smooth_noise
from landcover.synth.spectra import reflectance

SYNTH_INFO = "synth.json"


class SynthError(LandcoverError, ValueError):
    """Generator options that cannot work."""


@dataclass(frozen=True)
class SynthOptions:
    cities: int = 12
    tiles_per_city: int = 2
    size: int = 256
    seed: int = 42
    unlabelled_fraction: float = 0.03
    zones: tuple[str, ...] | None = None  # restrict to these climate zones

    def check(self) -> None:
        if self.cities < 1:
            raise SynthError(f"--cities must be at least 1, got {self.cities}")
        if self.tiles_per_city < 1:
            raise SynthError(f"--tiles-per-city must be at least 1, got {self.tiles_per_city}")
        if self.size < 32:
            raise SynthError(f"--size must be at least 32 pixels, got {self.size}")
        if not 0 <= self.unlabelled_fraction < 1:
            raise SynthError(f"unlabelled_fraction must be in [0, 1), got {self.unlabelled_fraction}")
        for z in self.zones or ():
            if z not in CLIMATE_ZONES:
                raise SynthError(f"unknown climate zone {z!r}; known: {', '.join(CLIMATE_ZONES)}")


def pick_cities(n: int, zones: tuple[str, ...] | None = None) -> list[City]:
    """Round-robin over zones so small demos still span every climate."""
    by_zone: dict[str, list[City]] = {z: [] for z in ZONE_ORDER}
    for cid, name, country, lat, lon, zone in CITY_TABLE:
        by_zone[zone].append(City(cid, name, country, lat, lon, zone))
    order = [z for z in ZONE_ORDER if zones is None or z in zones]
    picked: list[City] = []
    i = 0
    while len(picked) < n:
        progressed = False
        for z in order:
            if i < len(by_zone[z]) and len(picked) < n:
                picked.append(by_zone[z][i])
                progressed = True
        if not progressed:
            raise SynthError(f"only {len(picked)} real cities available for zones {order}; asked {n}")
        i += 1
    return picked


def _spiral(k: int) -> tuple[int, int]:
    """Grid offset of a city's k-th tile, spiralling out from the centre tile."""
    x = y = 0
    dx, dy = 1, 0
    seg, steps, turns = 1, 0, 0
    for _ in range(k):
        x, y = x + dx, y + dy
        steps += 1
        if steps == seg:
            steps = 0
            dx, dy = -dy, dx
            turns += 1
            if turns % 2 == 0:
                seg += 1
    return x, y


@dataclass(frozen=True)
class TileSpec:
    city: City
    city_index: int
    tile_index: int
    size: int
    seed: int
    unlabelled_fraction: float

    @property
    def tile_id(self) -> str:
        gx, gy = _spiral(self.tile_index)
        return f"t{self.tile_index:03d}_{gx:+d}_{gy:+d}".replace("+", "p").replace("-", "m")


def _city_rng(spec: TileSpec) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([spec.seed, spec.city_index, 10**6]))


def render_tile(spec: TileSpec) -> dict:
    """All rasters of one tile in memory: {season: (10,H,W) uint16, 'label': (H,W) uint8, ...}."""
    city = spec.city
    size = spec.size
    city_rng = _city_rng(spec)
    gain = city_rng.uniform(0.88, 1.12)  # per-city illumination (sun angle, BRDF, calibration)
    haze_city = city_rng.uniform(0.0, 1.0)
    urban_radius_m = city_rng.uniform(700, 1600)
    phenology = city_rng.uniform(-0.25, 0.25)  # earlier/later seasons than the zone's norm
    centre_offset = city_rng.uniform(-0.2, 0.2, 2) * size
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, spec.city_index, spec.tile_index]))

    gx, gy = _spiral(spec.tile_index)
    # city centre in this tile's pixel coordinates (tile 0 holds it)
    centre_px = (size / 2 + centre_offset[0] + gy * size, size / 2 + centre_offset[1] - gx * size)
    land = make_landscape((size, size), city.climate_zone, rng, centre_px, urban_radius_m / PIXEL_SIZE_M)

    snowline = None
    if city.climate_zone == "alpine":
        snowline = float(np.quantile(land.elevation, 0.35))
    elif city.climate_zone == "boreal":
        snowline = float(land.elevation.min() - 200)  # lowland snow cover in boreal winters

    out: dict = {}
    for season in SEASONS:
        haze = haze_city * rng.uniform(0.3, 1.2)
        refl = reflectance(
            land.labels, land.crop, land.vigour, land.parcel_soil, land.elevation,
            season, city.climate_zone, rng, gain * rng.uniform(0.96, 1.04), haze,
            snowline if season == "winter" else None,
            phenology_shift=float(np.clip(phenology + rng.normal(0, 0.08), -0.5, 0.5)),
        )
        dn = np.clip(np.round(refl * REFLECTANCE_SCALE), 1, 65534).astype(np.uint16)
        # masked clouds/shadows: some mosaics keep a few small nodata holes
        if season in ("winter", "autumn") and rng.random() < 0.3:
            holes = smooth_noise((size, size), 6, rng) > 2.6
            dn[:, holes] = 0
        out[season] = dn

    label = land.labels.copy()
    if spec.unlabelled_fraction > 0:  # areas the reference map leaves unmapped
        field = smooth_noise((size, size), 10, rng)
        label[field > np.quantile(field, 1 - spec.unlabelled_fraction)] = 0
    out["label"] = label

    epsg = utm_epsg(city.lat, city.lon)
    xs, ys = warp_transform(CRS.from_epsg(4326), CRS.from_epsg(epsg), [city.lon], [city.lat])
    span = size * PIXEL_SIZE_M
    west = math.floor((xs[0] - span / 2 + gx * span) / PIXEL_SIZE_M) * PIXEL_SIZE_M
    north = math.floor((ys[0] + span / 2 + gy * span) / PIXEL_SIZE_M) * PIXEL_SIZE_M
    out["crs"] = CRS.from_epsg(epsg)
    out["transform"] = from_origin(west, north, PIXEL_SIZE_M, PIXEL_SIZE_M)
    return out


def _profile(size: int, count: int, dtype: str, crs: CRS, transform) -> dict:
    profile = dict(
        driver="GTiff", width=size, height=size, count=count, dtype=dtype, crs=crs,
        transform=transform, nodata=0, compress="deflate", predictor=2, interleave="band",
    )
    if size >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def write_tile(spec: TileSpec, city_dir: Path) -> Path:
    """Render and write one tile folder atomically (temporary folder, then rename)."""
    final = city_dir / spec.tile_id
    if final.is_dir():
        return final
    data = render_tile(spec)
    city_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.tile_id}.", suffix=".tmp", dir=city_dir))
    try:
        for season in SEASONS:
            with rasterio.open(tmp / f"{season}.tif", "w", **_profile(
                    spec.size, len(BANDS), "uint16", data["crs"], data["transform"])) as dst:
                dst.write(data[season])
                dst.descriptions = BANDS
                dst.update_tags(season=season, scale_factor=str(1 / REFLECTANCE_SCALE),
                                source="landcover synthetic Sentinel-2 generator")
        with rasterio.open(tmp / "label.tif", "w", **_profile(
                spec.size, 1, "uint8", data["crs"], data["transform"])) as dst:
            dst.write(data["label"], 1)
            dst.write_colormap(1, colormap())
            dst.set_band_description(1, "land cover class (0 = unlabelled)")
            dst.update_tags(**{f"class_{c.code}": c.name for c in CLASSES})
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-probe.", delete=True)
        probe.close()
    except OSError as exc:
        raise SynthError(f"{out}: output folder is not writable ({exc.strerror})") from exc


def generate(
    out: Path, options: SynthOptions, progress: Callable[[int, int, str], None] | None = None
) -> list[Path]:
    """Write (or complete) the dataset under `out`; returns the tile folders."""
    options.check()
    out = Path(out)
    check_writable(out)
    info_path = out / SYNTH_INFO
    info = {"generator": "landcover.synth", "options": asdict(options)}
    if info_path.exists():
        previous = json.loads(info_path.read_text())
        if previous.get("options") != json.loads(json.dumps(info["options"])):
            raise SynthError(
                f"{out}: holds a dataset made with other options ({previous.get('options')}); "
                "choose an empty folder"
            )
    elif any(out.iterdir()):
        raise SynthError(f"{out}: folder is not empty and holds no {SYNTH_INFO}; choose an empty folder")
    atomic_write_json(info_path, info)

    cities = pick_cities(options.cities, options.zones)
    write_cities(out / "cities.csv", cities)
    specs = [
        TileSpec(city, ci, ti, options.size, options.seed, options.unlabelled_fraction)
        for ci, city in enumerate(cities)
        for ti in range(options.tiles_per_city)
    ]
    written = []
    for k, spec in enumerate(specs, start=1):
        written.append(write_tile(spec, out / "tiles" / spec.city.city_id))
        if progress:
            progress(k, len(specs), f"{spec.city.city_id}/{spec.tile_id}")
    atomic_write_text(out / "README.md", _dataset_readme(options, len(cities), len(specs)))
    return written


def _dataset_readme(options: SynthOptions, n_cities: int, n_tiles: int) -> str:
    return (
        "# Synthetic multi-seasonal Sentinel-2 dataset\n\n"
        f"Generated by `landcover synth` (seed {options.seed}): {n_cities} cities, {n_tiles} tiles of "
        f"{options.size} x {options.size} px at 10 m. Layout and contract: docs/data.md; the model "
        "behind the pixels: docs/synthetic-data.md.\n"
    )
