"""Landscape stage: one implementation behind `landcover landscape`, `landcover predict` with
`predict.landscape` and the batch-inference flow.

Per fuel-map tile (`landcover.tif`, `fuel.tif`, `provenance.json` from batch inference): terrain
from the DEM on the tile's grid, canopy layers from the land cover and the climate zone's table
(the zone batch inference recorded), the FBFM40 layer as `fuel.tif` holds it, written as an LCP
and as ELMFIRE layers. `landscape.json` (units, sources, checksums) is written last and marks the
tile complete; a rerun with the same inputs and settings skips it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import rasterio
from pystac.extensions.raster import RasterBand, RasterExtension
from rasterio.warp import transform_bounds

from landcover import __version__
from landcover.config import Params
from landcover.dataset import DataContractError, TileRef, discover_tiles, open_raster
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_write_json, sha256_file, tile_lock
from landcover.landscape.canopy import canopy_layers
from landcover.landscape.terrain import terrain
from landcover.landscape.writers import LAYERS, NODATA, stored_unit, to_int16, write_elmfire, write_lcp
from landcover.lineage import params_hash
from landcover.outcomes import TileOutcome, TileTally
from landcover.parallel import MapFn, thread_map

RECORD = "landscape.json"


def _source_id(path: str) -> dict:
    """A DEM or canopy raster as provenance: a local file by checksum, a URL by itself."""
    local = Path(path)
    return {"path": str(local.resolve()), "sha256": sha256_file(local)} if local.is_file() else {"url": path}


class TileLandscaper:
    """Per-tile work (the unit a flow maps)."""

    def __init__(self, p: Params, out_dir: Path, dem: str | None = None) -> None:
        self.lp, self.fuel, self.out_dir = p.landscape, p.fuel, Path(out_dir)
        self.dem = dem or p.landscape.dem
        if not self.dem:
            raise LandcoverError("a DEM is needed: --dem FILE or params landscape.dem")
        if not (Path(self.dem).is_file() or "://" in self.dem or self.dem.startswith("/vsi")):
            raise DataContractError(f"{self.dem}: DEM not found")
        self.request = {
            "dem": _source_id(self.dem),
            "canopy_table": {z or "default": {str(k): v.model_dump() for k, v in self.fuel.canopy_for(z).items()}
                             for z in (None, *self.fuel.canopy_zones)},
            "canopy_rasters": {a: _source_id(path) for a, path in sorted(self.lp.canopy_rasters.items())},
            "lcp": self.lp.lcp, "elmfire": self.lp.elmfire, "software_version": __version__,
        }
        self.request_hash = params_hash(self.request)

    def __call__(self, tile: TileRef) -> TileOutcome:
        src_dir = tile.directory
        for name in ("landcover.tif", "fuel.tif"):
            if not (src_dir / name).is_file():
                raise DataContractError(f"{src_dir / name}: missing (landscape reads batch-inference outputs)")
        provenance = _read_json(src_dir / "provenance.json") or {}
        zone = provenance.get("crosswalk_zone")
        zone = None if zone in (None, "default") else zone
        inputs = {name: sha256_file(src_dir / name) for name in ("landcover.tif", "fuel.tif")}
        out = self.out_dir / tile.city_id / tile.tile_id
        with tile_lock(out):
            record = _read_json(out / RECORD)
            if record and record.get("request_hash") == self.request_hash and record.get("inputs") == inputs and \
                    all((out / f).is_file() for f in record.get("files", [])):
                return TileOutcome.skip(tile.key)
            with open_raster(src_dir / "landcover.tif") as lc, open_raster(src_dir / "fuel.tif") as fu:
                landcover, fuel = lc.read(1), fu.read(1)
                crs, transform, shape = lc.crs, lc.transform, lc.shape
                bounds = lc.bounds
            ground = terrain(self.dem, crs, transform, shape, tile.key)
            canopy = canopy_layers(landcover, self.fuel.canopy_for(zone), dict(self.lp.canopy_rasters), crs,
                                   transform)
            layers = to_int16({"dem": ground.elevation, "slp": ground.slope, "asp": ground.aspect,
                               "fbfm40": fuel, **canopy.layers}, landcover == 0)
            (out / RECORD).unlink(missing_ok=True)
            written: list[Path] = []
            west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds)
            if self.lp.lcp:
                written += write_lcp(out / "landscape.lcp", layers, crs, transform, (south + north) / 2,
                                     f"landcover {tile.key}, zone {zone or 'default'}, {__version__}")
            if self.lp.elmfire:
                written += write_elmfire(out / "elmfire", layers, crs, transform)
            files = [str(p.relative_to(out)) for p in written]
            item = stac_item(out, src_dir, tile.key, files)
            atomic_write_json(out / "item.json", item.to_dict())
            atomic_write_json(out / RECORD, {
                "tile": tile.key, "request": self.request, "request_hash": self.request_hash, "inputs": inputs,
                "climate_zone": zone or "default", "crosswalk_version": provenance.get("crosswalk_version"),
                "files": files, "units": {k: {"what": v[0], "unit": stored_unit(k)} for k, v in LAYERS.items()},
                "nodata": NODATA, "canopy_from_rasters": canopy.from_rasters,
                "canopy_raster_fallback_pixels": canopy.fallback,
                "stats": {k: _stats(v) for k, v in layers.items()},
                "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()})
            return TileOutcome.wrote(tile.key)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _stats(values: np.ndarray) -> dict:
    valid = values[values != NODATA]
    return {"min": int(valid.min()), "max": int(valid.max())} if valid.size else {}


def stac_item(out: Path, src_dir: Path, key: str, files: list[str]) -> pystac.Item:
    """The tile's STAC Item with the landscape assets and their units: batch inference's Item when it
    is in the same folder, else a new one on the tile's footprint."""
    if (out / "item.json").is_file():
        item = pystac.Item.from_dict(json.loads((out / "item.json").read_text()))
    else:
        with rasterio.open(src_dir / "landcover.tif") as ds:
            w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
        item = pystac.Item(key.replace("/", "."), geometry, [w, s, e, n], dt.datetime.now(dt.UTC), {})
    for name in files:
        if name.endswith(".lcp"):
            item.add_asset("landscape", pystac.Asset(
                f"./{name}", title="FlamMap / FARSITE landscape (8 int16 bands)", media_type="application/octet-stream",
                roles=["data"], extra_fields={"landcover:bands": [f"{k}: {v[0]} ({stored_unit(k)})" for k, v in
                                                                  LAYERS.items()]}))
        elif name.endswith(".tif"):
            layer = Path(name).stem
            asset = pystac.Asset(f"./{name}", title=f"ELMFIRE {layer}", media_type=pystac.MediaType.GEOTIFF,
                                 roles=["data"])
            item.add_asset(f"elmfire_{layer}", asset)
            if layer in LAYERS:  # raster extension: value x scale is the natural unit
                _, unit, factor = LAYERS[layer]
                band = RasterBand.create(nodata=NODATA, data_type="int16", unit=unit,
                                         scale=1 / factor if factor != 1 else None)
            else:
                band = RasterBand.create(data_type="float32", unit="1")
            RasterExtension.ext(asset, add_if_missing=True).bands = [band]
    return item


@dataclass
class LandscapeResult(TileTally):
    out: Path
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"out": str(self.out), **self.tally(), "seconds": round(self.seconds, 2)}


def run_landscape(p: Params, fuelmaps: Path, out: Path, dem: str | None = None,
                  map_fn: MapFn | None = None) -> LandscapeResult:
    start = time.perf_counter()
    worker = TileLandscaper(p, out, dem)
    tiles, bad = discover_tiles(Path(fuelmaps))
    tiles = [t for t in tiles if (t.directory / "fuel.tif").exists() or (t.directory / "landcover.tif").exists()]
    if not tiles and not bad:
        raise LandcoverError(f"{fuelmaps}: no fuel-map tile folders (<city>/<tile>/fuel.tif) found")
    result = LandscapeResult(Path(out), failed={b.path: b.reason for b in bad})
    for tile, outcome in zip(tiles, (map_fn or thread_map(p.landscape.workers, catch_errors=True))(worker, tiles),
                             strict=True):
        result.record(tile.key, outcome)
    result.seconds = time.perf_counter() - start
    return result
