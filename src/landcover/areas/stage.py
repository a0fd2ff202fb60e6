"""Area maps: one implementation behind `landcover areas`, the DVC stage and the batch-inference flow.

For every city of a batch-inference output folder: a VRT over its tiles and a COG of the whole
area, for land cover, fuel and confidence, with the colour tables, class names, QGIS / SLD
styles and a quicklook PNG. A city whose tiles span UTM zones gets one map per zone (named `<city>_<epsg>`) and is
reported; a tile off the area's pixel grid is left out and reported.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from landcover import __version__
from landcover.areas.quicklook import QUICKLOOK, write_quicklook
from landcover.classes import CLASSES, colormap
from landcover.config import Params
from landcover.errors import LandcoverError
from landcover.fuel import FBFM40, fuel_colormap
from landcover.fuelmap import OUTPUTS, PROVENANCE, complete_tiles
from landcover.io_utils import atomic_write_json, atomic_write_text, sha256_file, tile_lock
from landcover.maps.assemble import write_area_cog
from landcover.maps.layout import Area, plan_areas, read_grid
from landcover.maps.styles import write_styles
from landcover.maps.vrt import vrt_xml
from landcover.parallel import one_line

RECORD = "area.json"
SUMMARY = "areas.json"
RESAMPLING = {"landcover.tif": "mode", "fuel.tif": "mode", "confidence.tif": "average"}


@dataclass
class AreasResult:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)  # tile folder -> why it is in no map
    split_by_zone: dict[str, list[str]] = field(default_factory=dict)  # city -> its maps
    areas: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"out": str(self.out_dir), "areas_written": len(self.written), "areas_skipped": len(self.skipped),
                "failed": self.failed, "tiles_left_out": self.left_out, "split_by_zone": self.split_by_zone,
                "areas": self.areas, "seconds": round(self.seconds, 1), "version": __version__}


def tiles_by_city(fuelmaps: Path) -> dict[str, list[Path]]:
    cities: dict[str, list[Path]] = {}
    for key, folder in complete_tiles(fuelmaps).items():
        cities.setdefault(key.split("/")[0], []).append(folder)
    return cities


def _band_info(raster: str) -> tuple[dict | None, dict[int, str] | None, str]:
    if raster == "landcover.tif":
        return colormap(), {c.code: c.name for c in CLASSES}, "land cover class code (0 = nodata)"
    if raster == "fuel.tif":
        return fuel_colormap(), {k: f"{v[0]} {v[1]}" for k, v in FBFM40.items()}, "FBFM40 fuel model code (0 = nodata)"
    return None, None, "top-class probability, percent (0 = nodata)"


def write_area(area: Area, out: Path, input_root: Path | None = None) -> str:
    """Write one area's maps unless its record says they are current; "written" or "skipped"."""
    folder = out / area.name
    inputs = {str(p.tile_dir): sha256_file(p.tile_dir / PROVENANCE) for p in area.tiles}
    record = {"area": area.name, "crs": area.crs.to_string(), "width": area.width, "height": area.height,
              "transform": list(area.transform)[:6], "tiles": inputs, "version": __version__}
    with tile_lock(folder):
        previous = folder / RECORD
        names = [f"{Path(r).stem}{ext}" for r in OUTPUTS for ext in (".tif", ".vrt")] + [QUICKLOOK]
        if previous.is_file() and all((folder / n).is_file() for n in names):
            try:
                if json.loads(previous.read_text()) == record:
                    return "skipped"
            except ValueError:
                pass
        previous.unlink(missing_ok=True)  # the record marks the area complete: drop it first
        for raster in OUTPUTS:
            cmap, categories, description = _band_info(raster)
            vrt = folder / f"{Path(raster).stem}.vrt"
            atomic_write_text(vrt, vrt_xml(area, raster, vrt, "Byte", 0, cmap, categories, description))
            write_area_cog(area, raster, folder / raster, RESAMPLING[raster])
        write_styles(folder)
        write_quicklook(area, folder, input_root)
        for placed in area.tiles:  # and one per tile, read from the area's COGs (`tiles/<tile>.png`)
            write_quicklook(area, folder, input_root, placed)
        atomic_write_json(previous, record)
    return "written"


def run_areas(p: Params, fuelmaps: Path, out: Path, input_root: Path | None = None) -> AreasResult:
    """Every city's maps; `input_root` (the tiles' dataset) adds the summer composite to the quicklooks."""
    start = time.perf_counter()
    fuelmaps, out = Path(fuelmaps), Path(out)
    cities = tiles_by_city(fuelmaps)
    if not cities:
        raise LandcoverError(f"{fuelmaps}: no complete batch-inference tiles (<city>/<tile>/{PROVENANCE})")
    result = AreasResult(out)
    for city, tile_dirs in cities.items():
        try:
            areas, rejected = plan_areas(city, [read_grid(d) for d in tile_dirs])
        except Exception as exc:  # an unreadable raster fails its city, not the run
            result.failed[city] = one_line(exc)
            continue
        result.left_out |= rejected
        if len(areas) > 1:
            result.split_by_zone[city] = [a.name for a in areas]
        for area in areas:
            try:
                status = write_area(area, out, input_root)
            except Exception as exc:
                result.failed[area.name] = one_line(exc)
                continue
            (result.written if status == "written" else result.skipped).append(area.name)
            res = abs(area.transform.a * area.transform.e)
            result.areas.append({"area": area.name, "epsg": area.crs.to_epsg(), "tiles": len(area.tiles),
                                 "width": area.width, "height": area.height,
                                 "extent_km2": round(area.width * area.height * res / 1e6, 3)})
    result.seconds = time.perf_counter() - start
    atomic_write_json(out / SUMMARY, result.summary())
    return result
