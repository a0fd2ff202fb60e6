"""Writes a synthetic dataset in the canonical layout (BRIEF section 2), deterministically.

Each tile is drawn from its own seed (dataset seed, city index, tile index), so a tile's pixels do
not depend on how many other tiles are made, and a rerun with the same options skips the tiles
that already exist. A tile is rendered in blocks (`BLOCK` px), each from the tile's plan and
position-keyed noise, so memory does not grow with the tile and the pixels do not depend on the
block size. Tiles are written to a hidden temporary folder and renamed into place, so an
interrupted run never leaves a half-written tile.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows
from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from landcover.bands import BANDS, PIXEL_SIZE_M, REFLECTANCE_SCALE, SEASONS
from landcover.classes import CLASSES, colormap
from landcover.dataset import CLIMATE_ZONES, City, write_cities
from landcover.errors import LandcoverError
from landcover.geo import utm_epsg
from landcover.io_utils import atomic_write_json, atomic_write_text, tile_lock
from landcover.synth import landscape
from landcover.synth.cities import CITY_TABLE, ZONE_ORDER
from landcover.synth.landscape import LandscapePlan
from landcover.synth.noise import SmoothNoise, Window, normal_quantile
from landcover.synth.spectra import PSF_HALO, reflectance

SYNTH_INFO = "synth.json"
BLOCK = 1024  # pixels per rendered block side: memory is set by this, not by the tile
GDAL_CACHE_MB = 64
# noise field ids of the generator's own layers (landscape.Field holds the landscape's)
SENSOR_NOISE, HOLES, UNLABELLED = 100, 101, 102


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


@dataclass(frozen=True)
class SeasonPlan:
    gain: float
    haze: float
    phenology_shift: float
    holes: bool  # masked clouds/shadows: some autumn and winter mosaics keep a few small nodata holes


@dataclass(frozen=True)
class TilePlan:
    """Everything random about a tile that is not a per-pixel field: rendering any block of the
    tile from it gives the same pixels as rendering the whole tile."""

    spec: TileSpec
    key: tuple[int, ...]
    landscape: LandscapePlan
    seasons: dict[str, SeasonPlan]
    crs: CRS
    transform: Affine


def plan_tile(spec: TileSpec) -> TilePlan:
    city = spec.city
    size = spec.size
    city_rng = _city_rng(spec)
    gain = city_rng.uniform(0.88, 1.12)  # per-city illumination (sun angle, BRDF, calibration)
    haze_city = city_rng.uniform(0.0, 1.0)
    urban_radius_m = city_rng.uniform(700, 1600)
    phenology = city_rng.uniform(-0.25, 0.25)  # earlier/later seasons than the zone's norm
    centre_offset = city_rng.uniform(-0.2, 0.2, 2) * size
    key = (spec.seed, spec.city_index, spec.tile_index)
    rng = np.random.default_rng(np.random.SeedSequence(list(key)))

    gx, gy = _spiral(spec.tile_index)
    # city centre in this tile's pixel coordinates (tile 0 holds it)
    centre_px = (size / 2 + centre_offset[0] + gy * size, size / 2 + centre_offset[1] - gx * size)
    land = landscape.plan((size, size), city.climate_zone, rng, key, centre_px, urban_radius_m / PIXEL_SIZE_M)
    seasons = {}
    for season in SEASONS:
        haze = haze_city * rng.uniform(0.3, 1.2)
        seasons[season] = SeasonPlan(
            gain=gain * rng.uniform(0.96, 1.04), haze=haze,
            phenology_shift=float(np.clip(phenology + rng.normal(0, 0.08), -0.5, 0.5)),
            holes=season in ("winter", "autumn") and bool(rng.random() < 0.3),
        )

    epsg = utm_epsg(city.lat, city.lon)
    xs, ys = warp_transform(CRS.from_epsg(4326), CRS.from_epsg(epsg), [city.lon], [city.lat])
    span = size * PIXEL_SIZE_M
    west = math.floor((xs[0] - span / 2 + gx * span) / PIXEL_SIZE_M) * PIXEL_SIZE_M
    north = math.floor((ys[0] + span / 2 + gy * span) / PIXEL_SIZE_M) * PIXEL_SIZE_M
    return TilePlan(spec, key, land, seasons, CRS.from_epsg(epsg), from_origin(west, north, PIXEL_SIZE_M, PIXEL_SIZE_M))


def render_block(plan: TilePlan, window: Window) -> dict[str, np.ndarray]:
    """All rasters of one block of a tile: {season: (10, h, w) uint16, 'label': (h, w) uint8}."""
    outer = window.pad(PSF_HALO)
    land = landscape.render(plan.landscape, outer)
    zone = plan.spec.city.climate_zone
    snow_m = landscape.snowline(plan.landscape)
    out: dict[str, np.ndarray] = {}
    for index, season in enumerate(SEASONS):
        sp = plan.seasons[season]
        refl = reflectance(
            land, outer, window, season, zone, sp.gain, sp.haze, snow_m if season == "winter" else None,
            noise_key=(*plan.key, SENSOR_NOISE, index), phenology_shift=sp.phenology_shift,
        )
        dn = np.clip(np.round(refl * REFLECTANCE_SCALE), 1, 65534).astype(np.uint16)
        if sp.holes:
            dn[:, SmoothNoise((*plan.key, HOLES, index), 6)(window) > 2.6] = 0
        out[season] = dn
    label = land.labels[window.inner(outer)]
    if plan.spec.unlabelled_fraction > 0:  # areas the reference map leaves unmapped
        field = SmoothNoise((*plan.key, UNLABELLED), 10)(window)
        label = np.where(field > normal_quantile(1 - plan.spec.unlabelled_fraction), 0, label).astype(np.uint8)
    out["label"] = label
    return out


def blocks(size: int, block: int = BLOCK) -> list[Window]:
    return [Window(r, min(r + block, size), c, min(c + block, size))
            for r in range(0, size, block) for c in range(0, size, block)]


def _profile(size: int, count: int, dtype: str, crs: CRS, transform) -> dict:
    profile = dict(
        driver="GTiff", width=size, height=size, count=count, dtype=dtype, crs=crs,
        transform=transform, nodata=0, compress="deflate", predictor=2, interleave="band",
    )
    if size >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def write_tile(spec: TileSpec, city_dir: Path) -> Path:
    """Render and write one tile folder block by block, atomically (temporary folder, then rename).

    Memory stays flat with the tile's size: one block is in memory at a time, and GDAL's block
    cache is capped so written blocks go to disk instead of piling up."""
    final = city_dir / spec.tile_id
    if final.is_dir():
        return final
    plan = plan_tile(spec)
    with tile_lock(city_dir):  # a second generator on the same folder waits, then finds the tile
        if final.is_dir():
            return final
        for stale in city_dir.glob(f".{spec.tile_id}.*.tmp"):  # left by an interrupted run
            shutil.rmtree(stale, ignore_errors=True)
        _write_tile(spec, plan, final)
    return final


def _write_tile(spec: TileSpec, plan: TilePlan, final: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.tile_id}.", suffix=".tmp", dir=final.parent))
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), ExitStack() as stack:
            files = {
                season: stack.enter_context(rasterio.open(tmp / f"{season}.tif", "w", **_profile(
                    spec.size, len(BANDS), "uint16", plan.crs, plan.transform)))
                for season in SEASONS
            }
            files["label"] = stack.enter_context(rasterio.open(tmp / "label.tif", "w", **_profile(
                spec.size, 1, "uint8", plan.crs, plan.transform)))
            for season in SEASONS:
                files[season].descriptions = BANDS
                files[season].update_tags(season=season, scale_factor=str(1 / REFLECTANCE_SCALE),
                                          source="landcover synthetic Sentinel-2 generator")
            files["label"].write_colormap(1, colormap())
            files["label"].set_band_description(1, "land cover class (0 = unlabelled)")
            files["label"].update_tags(**{f"class_{c.code}": c.name for c in CLASSES})
            for window in blocks(spec.size):
                data = render_block(plan, window)
                target = rasterio.windows.Window(window.c0, window.r0, window.c1 - window.c0, window.r1 - window.r0)
                for season in SEASONS:
                    files[season].write(data[season], window=target)
                files["label"].write(data["label"], 1, window=target)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


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
