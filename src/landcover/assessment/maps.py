"""The map an assessment reads: every `landcover.tif` under a folder (batch-inference tiles, area
maps, a region's EEA cells), or every `transition.tif` of a change folder, in whatever CRS each is.

Points are sampled where they fall (a point on two rasters, as tiles of two UTM zones overlap,
takes the surer one, by `confidence.tif`); a point outside every raster or on nodata is reported,
never guessed. Pixel counts per class (the strata sizes of a design) are counted block by block and
need rasters that do not overlap and share one pixel area: a region's EEA folder, or one zone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from landcover.dataset import DataContractError
from landcover.fuelmap import provenance_model

BLOCK_ROWS = 1024
KINDS = {"landcover.tif": "landcover", "transition.tif": "transition"}


@dataclass(frozen=True)
class MapRaster:
    path: Path
    crs: object
    transform: object
    width: int
    height: int

    @property
    def pixel_area(self) -> float:
        return abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d)

    def windows(self) -> Iterator[Window]:
        for row in range(0, self.height, BLOCK_ROWS):
            yield Window(0, row, self.width, min(BLOCK_ROWS, self.height - row))


@dataclass
class MapLayers:
    folder: Path
    kind: str  # "landcover" | "transition"
    rasters: list[MapRaster]
    model: dict | None = None  # the model that made the map, from its provenance records
    _counts: list[dict[int, int]] | None = field(default=None, repr=False)

    @classmethod
    def discover(cls, folder: Path) -> MapLayers:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataContractError(f"{folder}: map folder not found")
        found = [(kind, sorted(p for p in folder.rglob(name)
                               if not any(part.startswith(".") for part in p.relative_to(folder).parts)))
                 for name, kind in KINDS.items()]
        found = [(kind, paths) for kind, paths in found if paths]
        if not found:
            raise DataContractError(f"{folder}: no landcover.tif (batch inference, area or region maps) or "
                                    "transition.tif (a change folder) under it")
        kind, paths = found[0]
        rasters = []
        for path in paths:
            with rasterio.open(path) as ds:
                if ds.crs is None:
                    raise DataContractError(f"{path}: the map has no CRS")
                rasters.append(MapRaster(path, ds.crs, ds.transform, ds.width, ds.height))
        return cls(folder, kind, rasters, _model(paths))

    def sample(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, found) per point: the map's code there (0 = nodata) and whether a raster covers it."""
        from pyproj import Transformer

        codes = np.zeros(len(lon), np.int64)
        found = np.zeros(len(lon), bool)
        surest = np.full(len(lon), -1, np.int64)
        for raster in self.rasters:
            x, y = Transformer.from_crs(4326, raster.crs, always_xy=True).transform(lon, lat)
            cols, rows = ~raster.transform * (np.asarray(x), np.asarray(y))
            cols, rows = np.floor(cols).astype(np.int64), np.floor(rows).astype(np.int64)
            inside = np.flatnonzero((cols >= 0) & (cols < raster.width) & (rows >= 0) & (rows < raster.height))
            if not len(inside):
                continue
            values = _read_points(raster.path, rows[inside], cols[inside])
            confidence = raster.path.parent / "confidence.tif"
            sure = _read_points(confidence, rows[inside], cols[inside]) if confidence.is_file() \
                else np.zeros(len(inside), np.int64)
            sure = np.where(values > 0, sure, -1)
            take = ~found[inside] | (sure > surest[inside])
            codes[inside[take]], surest[inside[take]] = values[take], sure[take]
            found[inside] = True
        return codes, found

    def overlaps(self) -> list[tuple[str, str]]:
        """Pairs of rasters that cover the same ground: bounds that intersect in their CRS, or in
        longitude and latitude for two CRSs."""
        pairs = []
        for i, a in enumerate(self.rasters):
            for b in self.rasters[i + 1:]:
                first, second = (_native_box(a), _native_box(b)) if a.crs == b.crs else (_lonlat_box(a), _lonlat_box(b))
                if first.intersection(second).area > 0:
                    pairs.append((str(a.path), str(b.path)))
        return pairs

    def pixel_counts(self) -> list[dict[int, int]]:
        """Per raster: code -> pixels (0 = nodata left out)."""
        if self._counts is None:
            self._counts = []
            for raster in self.rasters:
                counts = np.zeros(256, np.int64)
                with rasterio.open(raster.path) as ds:
                    for window in raster.windows():
                        counts += np.bincount(ds.read(1, window=window).ravel(), minlength=256)
                self._counts.append({int(c): int(counts[c]) for c in np.flatnonzero(counts) if c})
        return self._counts

    def strata(self) -> tuple[dict[int, int], float]:
        """Pixels per mapped code over the whole map, and the area of one pixel (m²)."""
        pairs = self.overlaps()
        if pairs:
            raise DataContractError(f"{self.folder}: the map's rasters overlap ({pairs[0][0]} and {pairs[0][1]}, "
                                    f"{len(pairs)} pair(s)): the strata would count that ground twice; give a map "
                                    "without overlaps (a region's EEA folder from `landcover map`, or one UTM zone)")
        areas = {round(r.pixel_area, 6) for r in self.rasters}
        if len(areas) != 1:
            raise DataContractError(f"{self.folder}: the map's rasters have different pixel areas ({sorted(areas)})")
        total: dict[int, int] = {}
        for counts in self.pixel_counts():
            for code, n in counts.items():
                total[code] = total.get(code, 0) + n
        return dict(sorted(total.items())), areas.pop()


def _bounds(r: MapRaster) -> tuple[float, float, float, float]:
    west, north = r.transform.c, r.transform.f
    return west, north + r.transform.e * r.height, west + r.transform.a * r.width, north


def _native_box(r: MapRaster):
    from shapely.geometry import box

    return box(*_bounds(r))


def _lonlat_box(r: MapRaster):
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    return box(*transform_bounds(r.crs, "EPSG:4326", *_bounds(r), densify_pts=21))


def _read_points(path: Path, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Band 1 at the given pixels, reading only the rows' span (one window per run of rows)."""
    out = np.zeros(len(rows), np.int64)
    with rasterio.open(path) as ds:
        order = np.argsort(rows)
        for start in range(0, len(order), 4096):
            chunk = order[start:start + 4096]
            r0, r1 = int(rows[chunk].min()), int(rows[chunk].max()) + 1
            c0, c1 = int(cols[chunk].min()), int(cols[chunk].max()) + 1
            block = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
            out[chunk] = block[rows[chunk] - r0, cols[chunk] - c0]
    return out


def _model(paths: list[Path]) -> dict | None:
    for path in paths:
        record = path.parent / "provenance.json"
        try:
            data = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if model := provenance_model(data):
            return model
    return None
