"""The region's maps on the European grid: every predicted tile (each on its UTM zone's grid)
reprojected once onto EPSG:3035 at 10 m, cell by cell of the EEA grid, block by block (flat memory).

Classes are not resampled as numbers (BRIEF section 11): land cover is the argmax of the tiles' class
probabilities resampled bilinearly (GDAL's warper leaves the probabilities' nodata out and renormalises),
with the top probability as the confidence; or, with `map.resampling: nearest`, the nearest pixel's class
and confidence. Where tiles of two UTM zones overlap, each pixel takes the one that is surer. The fuel
model is not resampled either: it follows the land cover through the crosswalk row of the pixel's
climate zone. A cell's files are written under temporary names and renamed, its record last, so a cell
either is complete or is redone; a rerun skips the cells whose sources have not changed.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from landcover import __version__
from landcover.classes import CLASSES, colormap
from landcover.config import Params
from landcover.fuel import FBFM40, fuel_colormap, lookup_table
from landcover.fuelmap import OUTPUTS, PROBABILITIES, PROBABILITY_NODATA, PROVENANCE, STAC_ITEM
from landcover.inference.stac import build_item
from landcover.io_utils import atomic_write_json, sha256_file
from landcover.lineage import params_hash
from landcover.maps.cog import translate_to_cog
from landcover.maps.styles import write_styles
from landcover.region.layers import ClimateZones
from landcover.region.plan import EEA_EPSG, Cell

LAYERS = {"landcover.tif": ("land cover class code (0 = nodata)", "mode"),
          "fuel.tif": ("Scott & Burgan (2005) FBFM40 fuel model code (0 = nodata)", "mode"),
          "confidence.tif": ("top-class probability, percent (0 = nodata)", "average")}


@dataclass(frozen=True)
class SourceTile:
    """A predicted tile: its folder and its footprint on the EEA grid."""

    folder: Path
    key: str
    bounds_3035: tuple[float, float, float, float]
    provenance_sha: str

    @classmethod
    def of(cls, folder: Path) -> SourceTile:
        with rasterio.open(folder / "landcover.tif") as src:
            bounds = transform_bounds(src.crs, f"EPSG:{EEA_EPSG}", *src.bounds, densify_pts=21)
        return cls(folder, f"{folder.parent.name}/{folder.name}", tuple(bounds), sha256_file(folder / PROVENANCE))


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _warp(path: Path, bands: list[int], shape: tuple[int, int], transform, resampling: Resampling,
          src_nodata: int) -> np.ndarray:
    """Bands of a tile's raster on a block of the EEA grid: float32, NaN where the tile has no data."""
    out = np.full((len(bands), *shape), np.nan, np.float32)
    with rasterio.open(path) as src:
        reproject(rasterio.band(src, bands), out, src_nodata=src_nodata, dst_nodata=np.nan,
                  dst_transform=transform, dst_crs=CRS.from_epsg(EEA_EPSG), resampling=resampling)
    return out


def classify_block(sources: list[SourceTile], shape: tuple[int, int], transform, use_probabilities: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(land cover uint8, confidence uint8) of one block: per source tile, its classes on the block, and
    per pixel the surest tile's."""
    best = np.full(shape, -1.0, np.float32)
    classes = np.zeros(shape, np.uint8)
    for source in sources:
        if use_probabilities:
            probs = _warp(source.folder / PROBABILITIES, list(range(1, len(CLASSES) + 1)), shape, transform,
                          Resampling.bilinear, PROBABILITY_NODATA)
            valid = ~np.isnan(probs[0])
            filled = np.where(valid, probs, -1.0)
            code = (filled.argmax(axis=0) + 1).astype(np.uint8)
            sure = filled.max(axis=0)
        else:
            code_f = _warp(source.folder / "landcover.tif", [1], shape, transform, Resampling.nearest, 0)[0]
            sure = _warp(source.folder / "confidence.tif", [1], shape, transform, Resampling.nearest, 0)[0]
            valid = ~np.isnan(code_f)
            code = np.nan_to_num(code_f).astype(np.uint8)
            sure = np.nan_to_num(sure, nan=-1.0)
        take = valid & (sure > best)
        classes[take], best[take] = code[take], sure[take]
    confidence = np.where(classes > 0, np.clip(np.round(best), 1, 100), 0).astype(np.uint8)
    return classes, confidence


def fuel_tables(p: Params, zones: ClimateZones) -> np.ndarray:
    """(zones + 1, 256) uint8: land cover -> fuel per zone index; row 0 (no zone polygon) uses the
    fallback zone's row, or the crosswalk's default row."""
    rows = [lookup_table(p.fuel.for_zone(zones.fallback))] + [lookup_table(p.fuel.for_zone(z)) for z in zones.names]
    return np.stack(rows)


def cell_request(p: Params, sources: list[SourceTile], zones_id: str) -> dict:
    return {"sources": {s.key: s.provenance_sha for s in sources}, "resampling": p.map.resampling,
            "crosswalk_version": p.fuel.crosswalk_version, "fuel": params_hash(p.fuel.model_dump(mode="json")),
            "zones": zones_id, "software_version": __version__}


def assemble_cell(p: Params, cell: Cell, sources: list[SourceTile], zones: ClimateZones, zones_id: str,
                  folder: Path) -> str:
    """Write a cell's three maps into `folder` (skipped when its record says the same sources and
    settings made them); returns "written" or "skipped"."""
    sources = [s for s in sources if _overlaps(s.bounds_3035, cell.bounds)]
    request = cell_request(p, sources, zones_id)
    record_path = folder / PROVENANCE
    if record_path.is_file() and all((folder / f).is_file() for f in OUTPUTS):
        try:
            if json.loads(record_path.read_text()).get("request") == request:
                return "skipped"
        except json.JSONDecodeError:
            pass
    folder.mkdir(parents=True, exist_ok=True)
    record_path.unlink(missing_ok=True)  # an interrupted overwrite never looks complete
    luts = fuel_tables(p, zones)
    used = np.zeros(len(zones.names) + 1, np.int64)  # mapped pixels per zone index
    counts = np.zeros(256, np.int64)
    crs = CRS.from_epsg(EEA_EPSG)
    profile = dict(driver="GTiff", width=cell.width, height=cell.height, count=1, dtype="uint8", crs=crs,
                   transform=cell.transform, nodata=0, tiled=True, blockxsize=256, blockysize=256)
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=folder) as tmp:
        raws = {name: Path(tmp) / f"raw-{name}" for name in OUTPUTS}
        dsts = {name: rasterio.open(path, "w", **profile) for name, path in raws.items()}
        try:
            for r0 in range(0, cell.height, p.map.block):
                for c0 in range(0, cell.width, p.map.block):
                    window = Window(c0, r0, min(p.map.block, cell.width - c0), min(p.map.block, cell.height - r0))
                    transform = rasterio.windows.transform(window, cell.transform)
                    shape = (int(window.height), int(window.width))
                    west, north = transform.c, transform.f
                    block_bounds = (west, north - 10 * shape[0], west + 10 * shape[1], north)
                    block_sources = [s for s in sources if _overlaps(s.bounds_3035, block_bounds)]
                    classes, confidence = classify_block(block_sources, shape, transform,
                                                         p.map.resampling == "probabilities")
                    zone = zones.rasterize(crs, transform, shape)
                    used += np.bincount(zone[classes > 0].ravel(), minlength=len(used))
                    fuel = luts[zone, classes]
                    counts += np.bincount(classes.ravel(), minlength=256)
                    for name, data in (("landcover.tif", classes), ("fuel.tif", fuel),
                                       ("confidence.tif", confidence)):
                        dsts[name].write(data, 1, window=window)
            dsts["landcover.tif"].write_colormap(1, colormap())
            dsts["fuel.tif"].write_colormap(1, fuel_colormap())
            dsts["landcover.tif"].update_tags(**{f"CLASS_{c.code}": c.name for c in CLASSES})
            dsts["fuel.tif"].update_tags(**{f"FUEL_{k}": f"{v[0]} {v[1]}" for k, v in FBFM40.items()})
            for name, ds in dsts.items():
                ds.set_band_description(1, LAYERS[name][0])
                ds.update_tags(cell=cell.name, crosswalk_version=p.fuel.crosswalk_version, software=__version__)
        finally:
            for ds in dsts.values():
                ds.close()
        for name, raw in raws.items():
            translate_to_cog(raw, Path(tmp) / name, LAYERS[name][1])
            (Path(tmp) / name).replace(folder / name)
    write_styles(folder)
    names = [zones.fallback or "default", *zones.names]
    used_rows = np.flatnonzero(used)
    zones_used = [names[i] for i in used_rows]
    majority = names[int(used.argmax())] if used.any() else (zones.fallback or "default")
    record = {
        "tile": f"{folder.parent.name}/{folder.name}", "cell": cell.name, "crs": f"EPSG:{EEA_EPSG}",
        "transform": list(cell.transform)[:6], "width": cell.width, "height": cell.height, "request": request,
        "models": _source_models(sources),
        # crosswalk_zone: the zone of most of the cell, which the landscape stage's canopy table follows
        "crosswalk_version": p.fuel.crosswalk_version, "crosswalk_zone": majority, "zones_used": zones_used,
        "crosswalks": {names[i]: {str(c.code): int(luts[i, c.code]) for c in CLASSES} for i in used_rows},
        "pixels": {c.name: int(counts[c.code]) for c in CLASSES}, "software_version": __version__,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}
    item = build_item(folder, f"{folder.parent.name}/{folder.name}", {
        **record, "model": record["models"][0] if len(record["models"]) == 1 else record["models"],
        "crosswalk": {f"{z}:{k}": v for z, table in record["crosswalks"].items() for k, v in table.items()}})
    atomic_write_json(folder / STAC_ITEM, item.to_dict(include_self_link=False))
    atomic_write_json(record_path, record)  # last: the cell is complete
    return "written"


def _source_models(sources: list[SourceTile]) -> list[dict]:
    """The models (URI, name, version, run) that predicted the cell's source tiles, each once."""
    models = {}
    for source in sources:
        model = json.loads((source.folder / PROVENANCE).read_text()).get("model") or {}
        models.setdefault(json.dumps(model, sort_keys=True), model)
    return list(models.values())


def assemble(p: Params, cells: list[Cell], maps_dir: Path, out_dir: Path, name: str, zones: ClimateZones,
             zones_id: str, progress: Callable[[int, int, str], None] | None = None) -> dict[str, str]:
    """Every cell of the region: cell name -> "written" | "skipped"; then VRTs and styles over them."""
    from landcover.fuelmap import complete_tiles

    sources = [SourceTile.of(folder) for folder in complete_tiles(maps_dir).values()]
    if not sources:
        raise ValueError(f"{maps_dir}: no predicted tile to assemble")
    done = {}
    for k, cell in enumerate(cells, start=1):
        done[cell.name] = assemble_cell(p, cell, sources, zones, zones_id, out_dir / name / cell.name)
        if progress:
            progress(k, len(cells), f"{cell.name}: {done[cell.name]}")
    write_vrts(cells, out_dir, name)
    return done


def region_area(cells: list[Cell], out_dir: Path, name: str):
    """The cells as one mosaic on the EEA grid (what a VRT over them spans)."""
    from affine import Affine

    from landcover.maps.layout import Area, Placed

    west, north = min(c.west for c in cells), max(c.north for c in cells)
    east, south = max(c.bounds[2] for c in cells), min(c.bounds[1] for c in cells)
    return Area(name, CRS.from_epsg(EEA_EPSG), Affine(10, 0, west, 0, -10, north), round((east - west) / 10),
                round((north - south) / 10),
                [Placed(out_dir / name / c.name, round((c.west - west) / 10), round((north - c.north) / 10), c.width,
                        c.height) for c in cells])


def write_vrts(cells: list[Cell], out_dir: Path, name: str) -> None:
    """One VRT per map over every cell (they share the EEA grid), styled like the cells."""
    from landcover.io_utils import atomic_write_text
    from landcover.maps.vrt import vrt_xml

    area = region_area(cells, out_dir, name)
    tables = {"landcover": (colormap(), {c.code: c.name for c in CLASSES}),
              "fuel": (fuel_colormap(), {k: v[0] for k, v in FBFM40.items()}), "confidence": (None, None)}
    for stem, (cmap, names) in tables.items():
        vrt = out_dir / f"{stem}.vrt"
        atomic_write_text(vrt, vrt_xml(area, f"{stem}.tif", vrt, "Byte", 0, cmap, names, LAYERS[f"{stem}.tif"][0]))
    write_styles(out_dir)


def write_layer_vrts(cells: list[Cell], out_dir: Path, name: str, folder: str, layers: dict[str, str],
                     dtype: str, nodata: int | None) -> list[Path]:
    """A VRT per layer over the cells' `<folder>/<layer>.tif` (the fire models' landscapes): `out_dir/<folder>/`."""
    from landcover.io_utils import atomic_write_text
    from landcover.maps.vrt import vrt_xml

    area = region_area(cells, out_dir, name)
    written = []
    for layer, description in layers.items():
        vrt = out_dir / folder / f"{layer}.vrt"
        vrt.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(vrt, vrt_xml(area, f"{folder}/{layer}.tif", vrt, dtype, nodata, None, None, description))
        written.append(vrt)
    return written
