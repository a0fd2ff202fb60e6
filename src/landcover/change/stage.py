"""Change between two batch-inference trees: one implementation behind `landcover change` and the
`map-change` flow.

Tiles are paired by `<city>/<tile>`; a pair must share CRS, transform and size (a clear error
names the tile otherwise). Per tile: a transition COG (`from * 16 + to`, colour table and names),
a change mask gated by both maps' confidence, the transition matrix in km² and per-class gains and
losses; per city and for the whole run: the matrices summed, with a heat map. The run records
both maps' model versions and writes a STAC Item per tile.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from landcover import __version__
from landcover.change.report import write_gains_csv, write_matrix_csv, write_matrix_png
from landcover.change.stac import change_item
from landcover.classes import CLASSES
from landcover.config import Params
from landcover.errors import LandcoverError
from landcover.fuelmap import PROVENANCE, complete_tiles
from landcover.io_utils import atomic_write_json, atomic_write_text
from landcover.maps.assemble import write_area_cog
from landcover.maps.cog import write_uint8_cog
from landcover.maps.layout import plan_areas, read_grid
from landcover.maps.styles import write_styles
from landcover.maps.vrt import vrt_xml
from landcover.parallel import one_line
from landcover.transitions import (
    MASK_COLOURS,
    MASK_NAMES,
    change_mask,
    pixel_matrix,
    transition_codes,
    transition_colormap,
    transition_names,
)

SUMMARY = "change.json"


class GridMismatch(LandcoverError, ValueError):
    """The two maps of a tile are not on one grid."""


@dataclass
class ChangeResult:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    only_before: list[str] = field(default_factory=list)
    only_after: list[str] = field(default_factory=list)
    matrix_km2: np.ndarray | None = None
    models: dict[str, list] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self, min_confidence: int) -> dict:
        m = self.matrix_km2 if self.matrix_km2 is not None else np.zeros((1, 1))
        changed = float(m.sum() - np.trace(m))
        names = {c.code: c.name for c in CLASSES}
        top = sorted(((float(m[i, j]), names[i], names[j]) for i in names for j in names
                      if i != j and m.shape[0] > max(i, j) and m[i, j] > 0), reverse=True)[:10]
        return {"out": str(self.out_dir), "tiles_compared": len(self.written), "failed": self.failed,
                "top_transitions": [{"from": f, "to": t, "km2": round(v, 6)} for v, f, t in top],
                "only_in_before": self.only_before, "only_in_after": self.only_after,
                "min_confidence": min_confidence, "mapped_km2": round(float(m.sum()), 4),
                "changed_km2": round(changed, 4), "models": self.models, "seconds": round(self.seconds, 1),
                "version": __version__}


def _model(tile_dir: Path) -> dict:
    prov = json.loads((tile_dir / PROVENANCE).read_text())
    model = prov.get("model", {})
    return model if isinstance(model, dict) else {"uri": str(model)}


def compare_tile(key: str, before: Path, after: Path, out: Path, min_confidence: int
                 ) -> tuple[np.ndarray, dict, dict]:
    """Write one tile's change outputs; returns its (N, N) matrix in km² and both maps' models."""
    with rasterio.open(before / "landcover.tif") as b, rasterio.open(after / "landcover.tif") as a:
        if (b.crs, b.transform, b.shape) != (a.crs, a.transform, a.shape):
            raise GridMismatch(f"{key}: the maps are on different grids (before {b.crs} {b.shape} at "
                               f"{tuple(b.transform)[:6]}, after {a.crs} {a.shape} at {tuple(a.transform)[:6]})")
        lc_b, lc_a, crs, transform = b.read(1), a.read(1), b.crs, b.transform
    with rasterio.open(before / "confidence.tif") as b, rasterio.open(after / "confidence.tif") as a:
        conf_b, conf_a = b.read(1), a.read(1)
    px_km2 = abs(transform.a * transform.e) / 1e6
    model_before, model_after = _model(before), _model(after)
    codes = transition_codes(lc_b, lc_a)
    mask = change_mask(lc_b, lc_a, conf_b, conf_a, min_confidence)
    names = transition_names()
    write_uint8_cog(out / "transition.tif", codes, crs, transform, "land cover transition: from x 16 + to (0 = nodata)",
                    transition_colormap(), {f"TRANSITION_{k}": v for k, v in names.items()})
    write_uint8_cog(out / "change_mask.tif", mask, crs, transform,
                    f"change at confidence >= {min_confidence} % in both maps (0 = nodata)", MASK_COLOURS,
                    {f"MASK_{k}": v for k, v in MASK_NAMES.items()} | {"min_confidence": str(min_confidence)})
    write_styles(out, ("transition", "change_mask"))
    matrix = pixel_matrix(lc_b, lc_a, codes > 0) * px_km2
    confident = pixel_matrix(lc_b, lc_a, mask == 2) * px_km2
    write_matrix_csv(out / "transitions.csv", matrix)
    write_gains_csv(out / "gains_losses.csv", matrix)
    atomic_write_json(out / "tile_change.json", {
        "tile": key, "mapped_km2": float(matrix.sum()), "changed_km2": float(matrix.sum() - np.trace(matrix)),
        "confident_change_km2": float(confident.sum()), "min_confidence": min_confidence,
        "before_model": model_before, "after_model": model_after})
    atomic_write_json(out / "item.json", change_item(out, key, model_before, model_after, min_confidence).to_dict())
    return matrix, model_before, model_after


def _area_rasters(city: str, tile_dirs: list[Path], out: Path) -> None:
    """The city's transition and change mask as one VRT and COG each (one per UTM zone, as area maps)."""
    areas, _ = plan_areas(city, [read_grid(d, "transition.tif") for d in tile_dirs])
    names = {"transition.tif": (transition_colormap(), transition_names(), "land cover transition: from x 16 + to"),
             "change_mask.tif": (MASK_COLOURS, MASK_NAMES, "change mask")}
    for area in areas:
        folder = out / city / "area" if area.name == city else out / city / f"area_{area.name}"
        for raster, (cmap, categories, description) in names.items():
            vrt = folder / f"{Path(raster).stem}.vrt"
            atomic_write_text(vrt, vrt_xml(area, raster, vrt, "Byte", 0, cmap, categories, description))
            write_area_cog(area, raster, folder / raster, "mode")
        write_styles(folder, ("transition", "change_mask"))


def run_change(p: Params, before: Path, after: Path, out: Path) -> ChangeResult:
    start = time.perf_counter()
    before_tiles, after_tiles = complete_tiles(before), complete_tiles(after)
    if not before_tiles or not after_tiles:
        empty = before if not before_tiles else after
        raise LandcoverError(f"{empty}: no complete batch-inference tiles (<city>/<tile>/{PROVENANCE})")
    out = Path(out)
    result = ChangeResult(out, only_before=sorted(set(before_tiles) - set(after_tiles)),
                          only_after=sorted(set(after_tiles) - set(before_tiles)))
    per_city: dict[str, np.ndarray] = {}
    models: dict[str, set] = {"before": set(), "after": set()}
    for key in sorted(set(before_tiles) & set(after_tiles)):
        try:
            matrix, model_before, model_after = compare_tile(key, before_tiles[key], after_tiles[key], out / key,
                                                             p.change.min_confidence)
        except Exception as exc:
            result.failed[key] = one_line(exc)
            continue
        result.written.append(key)
        city = key.split("/")[0]
        per_city[city] = per_city.get(city, 0) + matrix
        models["before"].add(json.dumps(model_before, sort_keys=True))
        models["after"].add(json.dumps(model_after, sort_keys=True))
    result.models = {k: [json.loads(m) for m in sorted(v)] for k, v in models.items()}
    for city, matrix in per_city.items():
        _area_rasters(city, [out / k for k in result.written if k.split("/")[0] == city], out)
        write_matrix_csv(out / city / "transitions.csv", matrix)
        write_gains_csv(out / city / "gains_losses.csv", matrix)
        write_matrix_png(out / city / "transitions.png", matrix, f"{city}: land cover transitions (km²)")
    if per_city:
        result.matrix_km2 = sum(per_city.values())
        write_matrix_csv(out / "transitions.csv", result.matrix_km2)
        write_gains_csv(out / "gains_losses.csv", result.matrix_km2)
        write_matrix_png(out / "transitions.png", result.matrix_km2, "All tiles: land cover transitions (km²)")
    result.seconds = time.perf_counter() - start
    atomic_write_json(out / SUMMARY, result.summary(p.change.min_confidence))
    return result
