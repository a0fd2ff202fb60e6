"""What a viewer shows of a folder: every map raster this project writes (land cover, fuel model,
confidence, change transitions and mask; batch-inference tiles, area maps, a region's EEA cells or a
change folder), each in its own CRS, with the colours and names of the data contract.

Rasters are indexed once by their footprint in longitude and latitude; a tile or a pixel query
opens only the rasters under it, and reads them through their overviews (rio-tiler), so memory does
not grow with the area."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import transform_bounds

from landcover.bands import BANDS
from landcover.classes import CLASSES, colormap
from landcover.errors import LandcoverError
from landcover.fuel import FBFM40, fuel_colormap
from landcover.fuelmap import provenance_model
from landcover.transitions import MASK_COLOURS, MASK_NAMES, transition_colormap, transition_names


def _confidence_colours() -> dict[int, tuple[int, int, int, int]]:
    """1..100 %: a ramp from red (unsure) through yellow to green (sure)."""
    out = {}
    for v in range(1, 101):
        t = (v - 1) / 99
        r, g = (255, int(510 * t)) if t < 0.5 else (int(255 * (2 - 2 * t)), 255)
        out[v] = (r, g, 60, 255)
    return out


@dataclass(frozen=True)
class LayerKind:
    key: str  # file stem: landcover, fuel, confidence, transition, change_mask
    title: str
    colours: dict[int, tuple[int, int, int, int]]
    names: dict[int, str]
    legend: bool = True  # categories listed (confidence shows a ramp)


def kinds() -> dict[str, LayerKind]:
    lc_names = {c.code: c.name for c in CLASSES}
    return {
        "landcover": LayerKind("landcover", "Land cover", colormap(), lc_names),
        "fuel": LayerKind("fuel", "Fuel model (FBFM40)", fuel_colormap(),
                          {k: f"{v[0]} {v[1]}" for k, v in FBFM40.items()}),
        "confidence": LayerKind("confidence", "Confidence (%)", _confidence_colours(),
                                {1: "1 %", 50: "50 %", 100: "100 %"}, legend=False),
        "transition": LayerKind("transition", "Transition", transition_colormap(), transition_names()),
        "change_mask": LayerKind("change_mask", "Change mask", MASK_COLOURS, dict(MASK_NAMES)),
    }


@dataclass
class Raster:
    path: Path
    bounds: tuple[float, float, float, float]  # west, south, east, north in EPSG:4326
    crs: str
    overviews: bool
    coarsest_m: float = 10.0  # metres per pixel of its coarsest overview (its own resolution without any)


@dataclass
class MapSet:
    """One folder's maps: layer key -> its rasters; the model that made them, when recorded."""

    folder: Path
    layers: dict[str, list[Raster]]
    model: dict | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def discover(cls, folder: Path) -> MapSet:
        folder = Path(folder)
        if not folder.is_dir():
            raise LandcoverError(f"{folder}: no such folder")
        layers: dict[str, list[Raster]] = {}
        without: list[str] = []
        for key in kinds():
            for path in sorted(folder.rglob(f"{key}.tif")):
                if any(part.startswith(".") for part in path.relative_to(folder).parts):
                    continue
                with rasterio.open(path) as ds:
                    if ds.crs is None:
                        raise LandcoverError(f"{path}: the map has no CRS")
                    bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
                    has, crs, coarsest = bool(ds.overviews(1)), ds.crs.to_string(), _coarsest(ds)
                layers.setdefault(key, []).append(Raster(path, tuple(bounds), crs, has, coarsest))
                if not has:
                    without.append(str(path.relative_to(folder)))
        if not layers:
            raise LandcoverError(f"{folder}: no maps to show (landcover.tif, fuel.tif, confidence.tif, transition.tif "
                                 "or change_mask.tif under it: a batch-inference, area-maps, region or change folder)")
        warnings = [f"{len(without)} map file(s) without overviews ({without[0]}, ...): small zooms will be slow "
                    "(and are left blank where a tile would read far more pixels than it shows)"] if without else []
        return cls(folder, layers, _model(folder), warnings)

    def bounds(self) -> tuple[float, float, float, float]:
        boxes = np.array([r.bounds for rs in self.layers.values() for r in rs])
        return (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max()))

    def under(self, key: str, west: float, south: float, east: float, north: float) -> list[Raster]:
        return [r for r in self.layers.get(key, []) if r.bounds[0] < east and west < r.bounds[2]
                and r.bounds[1] < north and south < r.bounds[3]]


@dataclass
class BaseImagery:
    """The tiles' summer composites under a dataset root (`--input`), shown in true colour."""

    rasters: list[Raster]
    indexes: tuple[int, int, int]  # B04, B03, B02 (1-based band numbers)

    @classmethod
    def discover(cls, root: Path) -> BaseImagery:
        paths = sorted(Path(root).rglob("summer.tif"))
        if not paths:
            raise LandcoverError(f"{root}: no tile's summer.tif under it for the base layer")
        rasters = []
        for path in paths:
            with rasterio.open(path) as ds:
                rasters.append(Raster(path, tuple(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)),
                                      ds.crs.to_string(), bool(ds.overviews(1)), _coarsest(ds)))
        return cls(rasters, tuple(BANDS.index(b) + 1 for b in ("B04", "B03", "B02")))

    def under(self, west: float, south: float, east: float, north: float) -> list[Raster]:
        return [r for r in self.rasters if r.bounds[0] < east and west < r.bounds[2]
                and r.bounds[1] < north and south < r.bounds[3]]


def _coarsest(ds) -> float:
    """Metres per pixel of a raster's coarsest overview (degrees taken at 111 km)."""
    res = abs(ds.transform.a) * (111_000.0 if ds.crs.is_geographic else 1.0)
    return res * max([1, *ds.overviews(1)])


def _model(folder: Path) -> dict | None:
    """The model that made the maps: from their provenance records, or (area maps) from those of the
    tiles an area was assembled from (its area.json lists them)."""
    records = sorted(folder.rglob("provenance.json"))[:50]
    for area in sorted(folder.rglob("area.json"))[:50]:
        try:
            tiles = list(json.loads(area.read_text()).get("tiles", {}))
        except (OSError, json.JSONDecodeError):
            continue
        for tile in tiles[:1]:
            bases = (Path(), folder, folder.parent, folder.parent.parent)
            records += [b / tile / "provenance.json" for b in bases if (b / tile / "provenance.json").is_file()][:1]
    for record in records:
        try:
            data = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if model := provenance_model(data):
            return model
    return None
