"""Mosaic stage: one implementation behind `landcover mosaic` and the build-dataset flow.

Per tile and season: search the source, read each scene's BOA offset from its metadata, read the
scenes onto the tile grid strip by strip and composite the clear observations, checking each
scene's plausibility in the same pass (a scene that fails is dropped, or fixed, and the season is
composited again without it): `season.py`. Reads that fail are retried, and a file that still fails
names its scene. Files are written atomically, the manifest first as `writing` and last as
`complete`: a rerun skips complete tiles made with the same request and redoes the rest. Tiles run
one after the other here (each uses every core), or fan out over a Dask cluster
(`mosaic.dask_address`), one tile per task.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from landcover import __version__
from landcover.bands import SEASONS
from landcover.config import MosaicParams, Params, arg_or
from landcover.dataset import City, DataContractError, read_cities, write_cities
from landcover.errors import LandcoverError
from landcover.geo import TileGrid
from landcover.io_utils import atomic_write_json, sha256_file, tile_lock
from landcover.lineage import params_hash
from landcover.mosaic.grid import plan_targets
from landcover.mosaic.opening import Source, open_source
from landcover.mosaic.scenes import (
    Scene,
    SceneError,
    detect_assets,
    newest_processing,
    sort_scenes,
    to_scene,
)
from landcover.mosaic.season import Compositor, SeasonComposite, TileFailed, gdal_options
from landcover.mosaic.sources import StacApiSource, season_window
from landcover.mosaic.writer import COUNT_FILE, MANIFEST, read_manifest, write_counts, write_season
from landcover.outcomes import TileOutcome, TileTally
from landcover.parallel import MapFn, dask_map, thread_map

Progress = Callable[[str, int, int, str], None]  # tile key, steps done, steps in all, what


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
        s3 = source.preset.s3_endpoint if isinstance(source, StacApiSource) else None
        self.compositor = Compositor(p.mosaic, gdal_options(p.mosaic, s3))
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
                seasons[season] = self.compositor.season(scenes, tile, season)
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
                          f"{s}: {_share(r.count == 0)} of pixels never clear (nodata)"
                          for s, r in seasons.items() if (r.count == 0).any())
            return TileOutcome.wrote(tile.key, notes, megapixels=tile.width * tile.height / 1e6,
                                     seconds=time.perf_counter() - start)


def _share(mask) -> str:
    share = float(mask.mean())
    return f"{share:.1%}" if share >= 0.001 else f"{int(mask.sum())} pixels, under 0.1%"


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
    if map_fn is None:
        map_fn = dask_map(p.mosaic.dask_address) if p.mosaic.dask_address else thread_map(1, catch_errors=True)
    for tile, outcome in zip(tiles, map_fn(worker, tiles), strict=True):
        if written := result.record(tile.key, outcome):
            result.megapixels += written.figures["megapixels"]
            if written.warnings:
                result.warnings[tile.key] = list(written.warnings)
    result.seconds = time.perf_counter() - start
    return result
