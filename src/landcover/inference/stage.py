"""Batch inference: one implementation behind `landcover predict`, the DVC stage and the flow."""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from landcover import __version__
from landcover.config import Params
from landcover.dataset import DataContractError, TileRef, discover_tiles, read_cities
from landcover.errors import LandcoverError
from landcover.fuel import lookup_table
from landcover.fuelmap import PROVENANCE
from landcover.inference.catalog import write_collection
from landcover.inference.writer import provenance_matches, remove_stale_temporaries, write_tile
from landcover.io_utils import atomic_write_json, sha256_file, tile_lock
from landcover.maps.styles import write_styles
from landcover.model.bundle import ModelBundle
from landcover.model.loading import ModelRef, load_bundle
from landcover.outcomes import TileOutcome, TileTally
from landcover.parallel import MapFn, background_executor, thread_map
from landcover.sliding import SlidingPredictor, TileSource
from landcover.tracking import connect

LandscapeFn = Callable[[Params, Path, Path], Any]  # the landscape stage: (params, fuel maps, out) -> its result


@dataclass
class PredictResult(TileTally):
    out_dir: Path
    model: ModelRef
    km2: float = 0.0
    seconds: float = 0.0
    landscape: dict | None = None  # the landscape step's summary when predict.landscape is on

    def summary(self) -> dict:
        return {"model_uri": self.model.uri, "model": self.model.resolved_uri, "model_version": self.model.version,
                "run_id": self.model.run_id, **self.tally(), "km2": round(self.km2, 3),
                "seconds": round(self.seconds, 2), "landscape": self.landscape}


def default_model_uri(p: Params) -> str:
    return p.predict.model_uri or f"models:/{p.mlflow.model_name}@champion"


class TilePredictor:
    """Per-tile work (the unit a flow maps): checksums, skip check, predict, write, STAC."""

    def __init__(self, bundle: ModelBundle, ref: ModelRef, p: Params, out_dir: Path, device: str,
                 zones: dict[str, str] | None = None) -> None:
        self.ref, self.out_dir = ref, Path(out_dir)
        self.window, self.overlap = p.inference.window, p.inference.overlap
        self.tta, self.probabilities = p.inference.tta, p.predict.probabilities
        self._options = (self.window, self.overlap, p.inference.batch_size, self.tta, p.inference.background_nice)
        self._predictor: SlidingPredictor | None = SlidingPredictor(bundle, *self._options[:3], device,
                                                                    tta=self.tta, background_nice=self._options[4])
        # the crosswalk of params.yaml wins: a new crosswalk version needs no retraining; the one the
        # model was trained with is recorded beside it. Its row follows the climate zone of the tile's
        # city (cities.csv beside the tiles); a city with no zone there gets the default row.
        self.fuel, self.zones = p.fuel, zones or {}
        self.crosswalk_version = p.fuel.crosswalk_version
        self.model_crosswalk_version = bundle.meta.crosswalk_version

    @property
    def predictor(self) -> SlidingPredictor:
        if self._predictor is None:  # unpickled on a Dask worker: the model of this run, once per process
            self._predictor = worker_predictor(self.ref.resolved_uri, self._options)
        return self._predictor

    def __getstate__(self) -> dict:
        """Pickled for a Dask worker without the model (tens of MB in every task otherwise): the worker
        loads the run's exact version (`ref.resolved_uri`) from the tracking store once."""
        return {**self.__dict__, "_predictor": None}

    def crosswalk_for(self, tile: TileRef) -> tuple[str, dict[int, int]]:
        zone = self.zones.get(tile.city_id)
        return zone or "default", self.fuel.for_zone(zone)

    def __call__(self, tile: TileRef) -> TileOutcome:
        missing = [str(p) for p in tile.season_paths.values() if not p.is_file()]
        if missing:
            raise DataContractError(f"{missing[0]}: season file missing")
        tile_out = self.out_dir / tile.city_id / tile.tile_id
        with tile_lock(tile_out), background_executor("checksums", self.predictor.background_nice) as pool:
            remove_stale_temporaries(tile_out)
            # hashing the inputs (hundreds of MB a tile) runs beside the model; it is awaited up
            # front only when an earlier run's sidecar may let the tile be skipped
            inputs = pool.submit(lambda: {p.name: sha256_file(p) for p in tile.season_paths.values()})

            zone, crosswalk = self.crosswalk_for(tile)

            def provenance() -> dict:
                return {
                    "tile": tile.key,
                    "model": {"uri": self.ref.resolved_uri, "name": self.ref.name, "version": self.ref.version,
                              "run_id": self.ref.run_id},
                    "crosswalk_version": self.crosswalk_version,
                    "crosswalk_zone": zone,
                    "crosswalk": {str(k): v for k, v in sorted(crosswalk.items())},
                    "model_crosswalk_version": self.model_crosswalk_version,
                    "code": CODE_FINGERPRINT,
                    "inputs": inputs.result(),
                    "window": self.window, "overlap": self.overlap, "tta": self.tta,
                    "probabilities": self.probabilities, "temperature": self.predictor.bundle.meta.temperature,
                    "software_version": __version__,
                }

            if (tile_out / PROVENANCE).is_file() and provenance_matches(tile_out, provenance()):
                if not (tile_out / "landcover.qml").is_file():  # written before styles were
                    write_styles(tile_out)
                return TileOutcome.skip(tile.key)
            created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
            with TileSource(tile) as src:
                return write_tile(self.predictor, src, tile_out, lookup_table(crosswalk),
                                  lambda: {**provenance(), "created": created}, self.probabilities)


@functools.lru_cache(maxsize=2)
def worker_predictor(model_uri: str, options: tuple) -> SlidingPredictor:
    """A worker process's predictor for one model version (MLFLOW_TRACKING_URI in its environment)."""
    window, overlap, batch_size, tta, nice = options
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bundle, _ = load_bundle(model_uri, device)
    return SlidingPredictor(bundle, window, overlap, batch_size, device, tta=tta, background_nice=nice)


def select_tiles(input_dir: Path, split_file: Path | None = None, subset: str | None = None
                 ) -> tuple[list[TileRef], dict[str, str]]:
    if (split_file is None) != (subset is None):
        raise LandcoverError("--split and --subset go together (for example --split splits/split.csv --subset test)")
    tiles, bad = discover_tiles(input_dir)
    failed = {b.path: b.reason for b in bad}
    if split_file is not None and subset:
        from landcover.splitfile import read_split

        wanted = {t.key for t in read_split(split_file, input_dir, subset)}
        tiles = [t for t in tiles if t.key in wanted]
    return tiles, failed


def city_zones(input_dir: Path) -> dict[str, str]:
    """city_id -> climate zone from the cities.csv of a dataset root (or beside its tiles/ folder)."""
    for candidate in (Path(input_dir) / "cities.csv", Path(input_dir).parent / "cities.csv"):
        if candidate.is_file():
            return {c.city_id: c.climate_zone for c in read_cities(candidate).values()}
    return {}


def _code_fingerprint() -> str:
    """Hash of the code that shapes the output pixels: a fix there redoes tiles on the next run."""
    import hashlib

    here = Path(__file__).resolve().parent
    files = sorted(here.glob("*.py")) + [here.parent / "model" / "normalization.py",
                                         here.parent / "model" / "bundle.py", here.parent / "fuel.py"]
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


CODE_FINGERPRINT = _code_fingerprint()


def run_predict(p: Params, input_dir: Path, out_dir: Path, model_uri: str | None = None,
                split_file: Path | None = None, subset: str | None = None, map_fn: MapFn | None = None,
                progress: Callable[[int, int, str], None] | None = None,
                landscape: LandscapeFn | None = None) -> PredictResult:
    """Predict every tile of `input_dir` into `out_dir`. With `predict.landscape`, `landscape` (the
    landscape stage's run_landscape, handed in by the caller: stages do not import one another) then
    writes each tile's fire-model inputs beside its fuel map."""
    start = time.perf_counter()
    if p.predict.landscape and landscape is None:
        raise LandcoverError("predict.landscape is on, but no landscape stage was handed to run_predict")
    connect(p.tracking_uri(), p.mlflow.experiment)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bundle, ref = load_bundle(model_uri or default_model_uri(p), device)
    tiles, failed = select_tiles(Path(input_dir), split_file, subset)
    if not tiles and not failed:
        raise LandcoverError(f"{input_dir}: no tile folders found")
    worker = TilePredictor(bundle, ref, p, out_dir, device, city_zones(Path(input_dir)))
    result = PredictResult(Path(out_dir), ref, failed=dict(failed))
    outcomes = (map_fn or thread_map(p.predict.workers, catch_errors=True))(worker, tiles)
    for k, (tile, outcome) in enumerate(zip(tiles, outcomes, strict=True), start=1):
        if written := result.record(tile.key, outcome):
            result.km2 += written.figures["km2"]
        if progress:
            progress(k, len(tiles), f"{tile.key}: {getattr(outcome, 'status', 'failed')}")
    with tile_lock(Path(out_dir)):  # one STAC Collection over every tile of the folder, items linked to it
        write_collection(Path(out_dir))
    if p.predict.landscape:  # the fire models' inputs of every tile, beside its fuel map
        made = landscape(p, Path(out_dir), Path(out_dir))
        result.landscape = made.summary()
        result.failed |= {f"{k} (landscape)": v for k, v in made.failed.items()}
    result.seconds = time.perf_counter() - start
    atomic_write_json(Path(out_dir) / "run_summary.json", result.summary())
    return result
