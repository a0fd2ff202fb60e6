"""GIS-ready outputs of one tile (BRIEF section 4): three COGs, provenance sidecar, STAC Item.

Rows arrive from the sliding-window predictor and are written, by a writer thread so the model
never waits for them, into plain tiled GeoTIFFs in a hidden temporary folder (uncompressed: the COG
step compresses once); the three are then turned into Cloud-Optimized GeoTIFFs at once, one
thread each (GDAL's COG driver, overviews with 'mode' resampling for categories) and renamed into place.
The provenance sidecar is written last: it marks the tile complete, and a rerun skips tiles whose
sidecar matches.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio

from landcover.classes import CLASSES, colormap
from landcover.fuel import FBFM40, fuel_colormap
from landcover.fuelmap import OUTPUTS, PROBABILITIES, PROBABILITY_NODATA, PROVENANCE, STAC_ITEM
from landcover.inference.stac import build_item
from landcover.io_utils import atomic_write_json, atomic_write_text
from landcover.maps.cog import translate_to_cog
from landcover.maps.gdal_cache import gdal_cache_budget
from landcover.maps.styles import write_styles
from landcover.outcomes import TileOutcome
from landcover.parallel import background_executor
from landcover.sliding import SlidingPredictor, TileSource

COG_GDAL_CACHE = 64 * 2**20


def _categories_aux_xml(names: dict[int, str]) -> str:
    """PAM sidecar: GDAL and QGIS show these category names for the codes."""
    top = max(names) if names else 0
    cats = "".join(f"<Category>{names.get(i, '')}</Category>" for i in range(top + 1))
    return (f'<PAMDataset><PAMRasterBand band="1"><CategoryNames>{cats}</CategoryNames>'
            "</PAMRasterBand></PAMDataset>\n")


def remove_stale_temporaries(tile_out: Path) -> list[Path]:
    """Leftovers of a killed run (hidden temporary folders/files). Call with the tile lock held."""
    stale = [p for p in tile_out.glob(".*") if p.name.startswith((".tmp-", ".provenance.json.", ".item.json.",
                                                                   ".landcover.tif", ".fuel.tif"))]
    for p in stale:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return stale


def provenance_matches(tile_out: Path, expected: dict) -> bool:
    path = tile_out / PROVENANCE
    files = (*OUTPUTS, STAC_ITEM, *((PROBABILITIES,) if expected.get("probabilities") else ()))
    if not path.is_file() or not all((tile_out / f).is_file() for f in files):
        return False
    try:
        found = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    keys = ("model", "crosswalk_version", "crosswalk_zone", "crosswalk", "inputs", "window", "overlap", "tta",
            "probabilities", "code")
    return all(found.get(k) == expected.get(k) for k in keys)


def write_tile(predictor: SlidingPredictor, src: TileSource, tile_out: Path, lut: np.ndarray,
               provenance: dict | Callable[[], dict], probabilities: bool = False) -> TileOutcome:
    """Predict and write one tile. `provenance` may be a function, called once the model is done
    (so input checksums can be computed while it runs). `probabilities` adds probabilities.tif."""
    tile_out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=tile_out))
    try:
        profile = dict(driver="GTiff", height=src.height, width=src.width, count=1, dtype="uint8",
                       crs=src.profile["crs"], transform=src.profile["transform"], nodata=0,
                       tiled=True, blockxsize=256, blockysize=256)
        names = (*OUTPUTS, *((PROBABILITIES,) if probabilities else ()))
        paths = {name: tmp / f"raw-{name}" for name in names}
        with contextlib.ExitStack() as stack:
            lc, fu, co = (stack.enter_context(rasterio.open(paths[n], "w", **profile)) for n in OUTPUTS)
            pr = stack.enter_context(rasterio.open(paths[PROBABILITIES], "w", **{
                **profile, "count": len(CLASSES), "nodata": PROBABILITY_NODATA, "interleave": "pixel"})
            ) if probabilities else None
            counted = [0]

            def write_rows(row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
                n = probs.shape[1]
                window = rasterio.windows.Window(0, row0, src.width, n)
                codes = np.where(valid, probs.argmax(0) + 1, 0).astype(np.uint8)
                conf = np.where(valid, np.round(probs.max(0) * 100), 0).astype(np.uint8)
                lc.write(codes, 1, window=window)
                fu.write(lut[codes], 1, window=window)
                co.write(conf, 1, window=window)
                if pr is not None:
                    pr.write(np.where(valid, np.round(probs * 100), PROBABILITY_NODATA).astype(np.uint8),
                             window=window)
                counted[0] += int(valid.sum())

            # one writer thread; at most one block of rows waits for it (bounded memory)
            with background_executor("tile-writer", predictor.background_nice) as writer:
                pending: list[Future] = []

                def hand_over(row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
                    if pending:
                        pending.pop().result()
                    pending.append(writer.submit(write_rows, row0, probs, valid))

                predictor.predict(src, hand_over)
                if pending:
                    pending.pop().result()
            if callable(provenance):
                provenance = provenance()
            # no timestamp in the rasters: a rerun of the same model on the same inputs gives the same bytes
            tags = {k: (json.dumps(v) if isinstance(v, dict | list) else str(v))
                    for k, v in provenance.items() if k != "created"}
            lc.write_colormap(1, colormap())
            fu.write_colormap(1, fuel_colormap())
            lc.set_band_description(1, "land cover class code (0 = nodata)")
            fu.set_band_description(1, "Scott & Burgan (2005) FBFM40 fuel model code (0 = nodata)")
            co.set_band_description(1, "top-class probability, percent (0 = nodata)")
            for ds in (lc, fu, co, *((pr,) if pr is not None else ())):
                ds.update_tags(**tags)
            if pr is not None:
                pr.descriptions = tuple(f"{c.name} probability (percent)" for c in CLASSES)
            lc.update_tags(**{f"CLASS_{c.code}": c.name for c in CLASSES})
            fu.update_tags(**{f"FUEL_{k}": f"{v[0]} {v[1]}" for k, v in FBFM40.items()})

        def translate(name: str) -> Path:
            resampling = "average" if name in ("confidence.tif", PROBABILITIES) else "mode"
            return translate_to_cog(paths[name], tmp / f"cog-{name}", resampling)

        # GDAL's default cache would hold all three rasters and their copies (+700 MB at 8192 px)
        with gdal_cache_budget(COG_GDAL_CACHE), ThreadPoolExecutor(len(paths), thread_name_prefix="tile-cog") as pool:
            cogs = dict(zip(paths, pool.map(translate, paths), strict=True))
        # the sidecars mark a tile complete: drop them before replacing any raster, so an interrupted
        # overwrite never looks complete (a rerun redoes the tile)
        for marker in (PROVENANCE, STAC_ITEM):
            (tile_out / marker).unlink(missing_ok=True)
        for name, cog in cogs.items():
            os.replace(cog, tile_out / name)  # same folder: atomic
        atomic_write_text(tile_out / "landcover.tif.aux.xml",
                          _categories_aux_xml({c.code: c.name for c in CLASSES}))
        atomic_write_text(tile_out / "fuel.tif.aux.xml",
                          _categories_aux_xml({k: v[0] for k, v in FBFM40.items()}))
        write_styles(tile_out)  # QGIS opens each raster styled (.qml), map servers take the .sld
        atomic_write_json(tile_out / STAC_ITEM, build_item(tile_out, provenance["tile"], provenance).to_dict())
        atomic_write_json(tile_out / PROVENANCE, provenance)  # last: the tile is complete
        km2 = counted[0] * abs(src.profile["transform"].a * src.profile["transform"].e) / 1e6
        return TileOutcome.wrote(provenance["tile"], pixels=counted[0], km2=km2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
