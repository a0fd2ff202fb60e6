"""Mosaic stage: one implementation behind `landcover mosaic` and the build-dataset flow.

Per tile and season: search the source, read each scene's BOA offset from its metadata, load the
scenes onto the tile grid (odc-stac, Dask), composite the clear observations, and check each
scene's plausibility in the same pass (a scene that fails is dropped, or fixed, and the season is
composited again without it). Reads that fail are retried; then the scenes are loaded one by one
to name the unreadable ones. Files are written atomically, the manifest first as `writing` and
last as `complete`: a rerun skips complete tiles made with the same request and redoes the rest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import rasterio

from landcover import __version__
from landcover.bands import BANDS, SEASONS
from landcover.config import MosaicParams, Params, arg_or
from landcover.dataset import City, DataContractError, read_cities, write_cities
from landcover.errors import LandcoverError
from landcover.geo import TileGrid
from landcover.io_utils import atomic_write_json, sha256_file, tile_lock
from landcover.lineage import params_hash
from landcover.mosaic.composite import composite_block, nonpositive_counts
from landcover.mosaic.grid import plan_targets
from landcover.mosaic.load import load_stack
from landcover.mosaic.opening import Source, open_source
from landcover.mosaic.scenes import (
    Scene,
    SceneError,
    detect_assets,
    newest_processing,
    solar_day_index,
    sort_scenes,
    to_scene,
)
from landcover.mosaic.sources import StacApiSource, season_window
from landcover.mosaic.writer import COUNT_FILE, MANIFEST, read_manifest, write_counts, write_season
from landcover.outcomes import TileOutcome, TileTally
from landcover.parallel import MapFn, one_line, thread_map

READ_ERRORS = (rasterio.errors.RasterioError, OSError)
BLUE = BANDS.index("B02")
Progress = Callable[[str, int, int, str], None]  # tile key, steps done, steps in all, what


class TileFailed(LandcoverError):
    """A tile that could not be made; the message names the tile, the season and the scenes."""


@dataclass
class SeasonComposite:
    pixels: np.ndarray  # (10, h, w) uint16, 0 = no clear observation
    count: np.ndarray  # (h, w) uint8 clear days
    used: list[Scene]
    excluded: list[dict] = field(default_factory=list)  # {"id", "reason"}

    def describe(self, window: tuple[dt.datetime, dt.datetime]) -> dict:
        nodata = float((self.count == 0).mean())
        return {"window": [window[0].isoformat(), window[1].isoformat()],
                "scenes": [s.describe() for s in self.used], "excluded": self.excluded,
                "nodata_fraction": round(nodata, 6),
                "clear_days": {"min": int(self.count.min()), "median": float(np.median(self.count)),
                               "max": int(self.count.max())}}


def _judge(scenes: list[Scene], with_offset: np.ndarray, without_offset: np.ndarray, mp: MosaicParams
           ) -> tuple[list[Scene], list[dict], bool]:
    """Scenes whose clear land pixels are mostly <= 0 after their offset: drop or fix them."""
    rule = mp.plausibility
    keep, excluded, changed = [], [], False

    def implausible(counts: np.ndarray) -> bool:
        land, bad = int(counts[0]), int(counts[1])
        return land >= rule.min_land_pixels and bad / land > rule.max_nonpositive_fraction

    for scene, a, b in zip(scenes, with_offset, without_offset, strict=True):
        if not implausible(a):
            keep.append(scene)
            continue
        changed = True
        share = f"{a[1] / a[0]:.0%} of {a[0]} clear land pixels have B02 <= 0 after offset {min(scene.offsets):g} " \
                f"({scene.offset_source})"
        if rule.on_fail == "fix" and any(scene.offsets) and not implausible(b):
            keep.append(dataclasses.replace(scene, offsets=(0.0,) * len(BANDS),
                                            offset_source=f"plausibility: offset not applied ({share})"))
        else:
            excluded.append({"id": scene.id, "reason": f"implausible: {share}"})
    return keep, excluded, changed


def composite(scenes: list[Scene], tile: TileGrid, mp: MosaicParams, check: bool = True) -> SeasonComposite:
    """The season's composite of `scenes` (in time order) on the tile's grid."""
    if not scenes:
        return SeasonComposite(np.zeros((len(BANDS), tile.height, tile.width), np.uint16),
                               np.zeros((tile.height, tile.width), np.uint8), [])
    stack, scl, clear = load_stack(scenes, tile, mp.chunk, mp.resampling_20m, mp.masked_classes(), mp.mask_buffer_m)
    offsets = np.array([s.offsets for s in scenes], dtype=np.float32)
    result = da.blockwise(composite_block, "cyx", stack, "tbyx", clear, "tyx", new_axes={"c": len(BANDS) + 1},
                          concatenate=True, dtype=np.uint16, offsets=offsets,
                          day_of=solar_day_index(scenes, tile.centre_lon()), quantile=mp.quantile)
    if not check:
        out = result.compute()
        return SeasonComposite(out[:-1], out[-1].astype(np.uint8), scenes)
    blue = stack[:, BLUE]
    out, with_offset, without_offset = dask.compute(
        result, nonpositive_counts(blue, scl, offsets[:, BLUE]), nonpositive_counts(blue, scl, 0 * offsets[:, BLUE]))
    keep, excluded, changed = _judge(scenes, with_offset, without_offset, mp)
    if changed:
        again = composite(keep, tile, mp, check=False)
        return dataclasses.replace(again, excluded=excluded)
    return SeasonComposite(out[:-1], out[-1].astype(np.uint8), scenes)


def _unreadable(scenes: list[Scene], tile: TileGrid, mp: MosaicParams) -> dict[str, str]:
    """Load each scene alone to find the ones that cannot be read."""
    bad = {}
    for scene in scenes:
        try:
            stack, scl, _ = load_stack([scene], tile, mp.chunk, mp.resampling_20m, mp.masked_classes())
            dask.compute(stack.sum(), scl.sum())
        except READ_ERRORS as exc:
            bad[scene.id] = one_line(exc)
    return bad


def composite_with_retries(scenes: list[Scene], tile: TileGrid, season: str, mp: MosaicParams) -> SeasonComposite:
    last: Exception | None = None
    for attempt in range(mp.retries + 1):
        try:
            return composite(scenes, tile, mp)
        except READ_ERRORS as exc:
            last = exc
            if attempt < mp.retries:
                time.sleep(mp.retry_delay_s)
    bad = _unreadable(scenes, tile, mp)
    tries = f"after {mp.retries + 1} tries"
    if not bad:
        raise TileFailed(f"{tile.key} {season}: reading failed {tries}: {last}")
    named = "; ".join(f"{k} ({v})" for k, v in bad.items())
    if not mp.skip_unreadable_scenes:
        raise TileFailed(f"{tile.key} {season}: unreadable scene(s) {tries}: {named}")
    result = composite_with_retries([s for s in scenes if s.id not in bad], tile, season, mp)
    result.excluded.extend({"id": k, "reason": f"unreadable {tries}: {v}"} for k, v in bad.items())
    return result


def _pixel_params(mp: MosaicParams) -> dict:
    """The params that shape a tile's pixels (a change redoes the tile; workers or Dask do not)."""
    keep = ("seasons", "max_cloud_cover", "mask_scl", "mask_snow", "mask_buffer_m", "quantile", "resampling_20m",
            "offset_when_unknown", "plausibility", "skip_unreadable_scenes")
    return mp.model_dump(mode="json", include=set(keep))


class TileMosaicker:
    """Per-tile work (the unit a flow maps): search, composite four seasons, write."""

    def __init__(self, p: Params, source: Source, out: Path, year: int,
                 progress: Progress | None = None) -> None:
        self.mp, self.source, self.year, self.progress = p.mosaic, source, year, progress
        self.tiles_root = Path(out) / "tiles"
        self.request = {"source": source.description, "year": year, "params": _pixel_params(p.mosaic)}
        self.request_hash = params_hash(self.request)

    def _step(self, tile: TileGrid, done: int, what: str) -> None:
        if self.progress:
            self.progress(tile.key, done, len(SEASONS) + 1, what)

    def scenes_for(self, tile: TileGrid, window: tuple[dt.datetime, dt.datetime]) -> tuple[list[Scene], list[dict]]:
        items = self.source.search(tile.lonlat_bounds(), *window, self.mp.max_cloud_cover)
        scenes, excluded = [], []
        for item in items:
            try:
                assets = detect_assets(item, self.source.asset_candidates)
                scenes.append(to_scene(item, assets, self.mp.offset_when_unknown))
            except SceneError as exc:
                excluded.append({"id": item.id, "reason": str(exc)})
        scenes, superseded = newest_processing(scenes)
        return sort_scenes(scenes), excluded + superseded

    def __call__(self, tile: TileGrid) -> TileOutcome:
        start = time.perf_counter()
        tile_dir = self.tiles_root / tile.city_id / tile.tile_id
        with tile_lock(tile_dir):
            for stale in tile_dir.glob(".*.tmp*"):  # temporaries of a killed run
                stale.unlink()
            manifest = read_manifest(tile_dir)
            if manifest is None and any((tile_dir / f"{s}.tif").exists() for s in SEASONS):
                raise TileFailed(f"{tile_dir}: holds season files that landcover mosaic did not write; "
                                 "refusing to overwrite them (choose another --out)")
            if (manifest and manifest.get("status") == "complete" and manifest.get("request_hash") ==
                    self.request_hash and manifest.get("grid") == tile.describe() and all(
                    (tile_dir / f).is_file() for f in manifest.get("files", {}))):
                return TileOutcome.skip(tile.key)
            seasons: dict[str, SeasonComposite] = {}
            windows = {}
            for k, season in enumerate(SEASONS):
                windows[season] = season_window(self.year, self.mp.seasons[season])
                scenes, rejected = self.scenes_for(tile, windows[season])
                self._step(tile, k, f"{season}: {len(scenes)} scenes")
                seasons[season] = composite_with_retries(scenes, tile, season, self.mp)
                seasons[season].excluded[:0] = rejected
            self._step(tile, len(SEASONS), "writing")
            record = {"tile": tile.key, "status": "writing", "grid": tile.describe(),
                      "search_bbox": [round(v, 6) for v in tile.lonlat_bounds()], "request": self.request,
                      "request_hash": self.request_hash, "software_version": __version__}
            atomic_write_json(tile_dir / MANIFEST, record)
            files = {}
            for season, result in seasons.items():
                window = [w.isoformat() for w in windows[season]]
                write_season(tile_dir / f"{season}.tif", tile, result.pixels, season, window)
                files[f"{season}.tif"] = sha256_file(tile_dir / f"{season}.tif")
            write_counts(tile_dir / COUNT_FILE, tile, {s: r.count for s, r in seasons.items()})
            files[COUNT_FILE] = sha256_file(tile_dir / COUNT_FILE)
            record |= {"status": "complete", "files": files,
                       "seasons": {s: r.describe(windows[s]) for s, r in seasons.items()},
                       "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}
            atomic_write_json(tile_dir / MANIFEST, record)
            self._step(tile, len(SEASONS) + 1, "done")
            notes = tuple(f"{s}: no scene found" if not r.used else
                          f"{s}: {(r.count == 0).mean():.1%} of pixels never clear (nodata)"
                          for s, r in seasons.items() if (r.count == 0).any())
            return TileOutcome.wrote(tile.key, notes, megapixels=tile.width * tile.height / 1e6,
                                     seconds=time.perf_counter() - start)


@dataclass
class MosaicResult(TileTally):
    out: Path
    source: dict = field(default_factory=dict)  # the source's description
    year: int | None = None
    warnings: dict[str, list[str]] = field(default_factory=dict)
    megapixels: float = 0.0
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"out": str(self.out), **self.tally(), "warnings": self.warnings,
                "megapixels": round(self.megapixels, 3), "seconds": round(self.seconds, 2)}


def merge_cities(path: Path, cities: list[City]) -> None:
    """Add the cities to the dataset's cities.csv; a city already there must agree."""
    known = read_cities(path) if path.is_file() else {}
    for city in cities:
        old = known.get(city.city_id)
        if old and (old.climate_zone != city.climate_zone or abs(old.lat - city.lat) > 1e-3
                    or abs(old.lon - city.lon) > 1e-3):
            raise DataContractError(f"{path}: city {city.city_id} is already there with other values ({old})")
        known.setdefault(city.city_id, city)
    write_cities(path, known.values())


class dask_scheduler:  # noqa: N801 - used as a context manager
    """Local threads by default, a Dask cluster when `mosaic.dask_address` is set. Remote reads
    get GDAL's cloud defaults and HTTP retries, on the cluster's workers too."""

    def __init__(self, mp: MosaicParams, source: Source | None = None) -> None:
        self.mp, self.client, self.config = mp, None, None
        self.remote = isinstance(source, StacApiSource)
        self.s3_endpoint = source.preset.s3_endpoint if self.remote else None

    def __enter__(self):
        import odc.stac

        if self.mp.dask_address:
            from distributed import Client

            self.client = Client(self.mp.dask_address)
        if self.remote or self.client is not None:
            # an S3 store of its own (the Copernicus Data Space's eodata): path-style requests to its endpoint;
            # GDAL reads the keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in each process's environment
            s3 = {"AWS_S3_ENDPOINT": self.s3_endpoint, "AWS_VIRTUAL_HOSTING": "FALSE"} if self.s3_endpoint else {}
            odc.stac.configure_rio(cloud_defaults=True, client=self.client, GDAL_HTTP_MAX_RETRY=str(self.mp.retries),
                                   GDAL_HTTP_RETRY_DELAY=str(self.mp.retry_delay_s), **s3)
        if self.client is None:
            self.config = dask.config.set(scheduler="threads", num_workers=self.mp.workers)
            self.config.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.config is not None:
            self.config.__exit__(*exc)


def run_mosaic(p: Params, out: Path, year: int | None = None, *, cities_file: Path | None = None,
               only: list[str] | None = None, aoi: Path | None = None, city_id: str | None = None,
               climate_zone: str | None = None, name: str | None = None, country: str | None = None,
               source: str | None = None, size: int | None = None, grid: int | None = None,
               map_fn: MapFn | None = None, progress: Progress | None = None) -> MosaicResult:
    """The stage, behind every door: plan the tiles (`cities_file`, or `aoi` under `city_id`), open the
    source (default params mosaic.source) and mosaic every tile of `year` (default mosaic.year)."""
    mp = p.mosaic
    year = arg_or(year, mp.year)
    if year is None:
        raise LandcoverError("--year is needed (or params mosaic.year)")
    tiles, cities = plan_targets(Path(out), arg_or(size, mp.size), arg_or(grid, mp.grid), cities_file, only, aoi,
                                 city_id, climate_zone, name, country)
    return mosaic_tiles(p, out, tiles, cities, open_source(arg_or(source, mp.source), mp), year, map_fn, progress)


def mosaic_tiles(p: Params, out: Path, tiles: list[TileGrid], cities: list[City], source: Source,
                 year: int, map_fn: MapFn | None = None, progress: Progress | None = None) -> MosaicResult:
    """Mosaic the given tiles from an open source (the region job and the tests plan their own)."""
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merge_cities(out / "cities.csv", cities)
    worker = TileMosaicker(p, source, out, year, progress)
    result = MosaicResult(out, source=source.description, year=year)
    with dask_scheduler(p.mosaic, source):
        outcomes = (map_fn or thread_map(1, catch_errors=True))(worker, tiles)
        for tile, outcome in zip(tiles, outcomes, strict=True):
            if written := result.record(tile.key, outcome):
                result.megapixels += written.figures["megapixels"]
                if written.warnings:
                    result.warnings[tile.key] = list(written.warnings)
    result.seconds = time.perf_counter() - start
    return result
