"""Area statistics of a region's maps: km² per land cover class and per fuel model within each polygon
of a zones layer (administrative units, say), read back from the cells as written. Pixel counts: a
10 m pixel of the equal-area EEA grid is exactly 100 m²; a pixel belongs to the polygon holding its
centre."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from landcover.classes import CLASSES
from landcover.fuel import FBFM40
from landcover.io_utils import atomic_write_text
from landcover.region.layers import StatZones
from landcover.region.plan import Cell

KM2_PER_PIXEL = 1e-4  # 10 m x 10 m


def zone_statistics(cells: list[Cell], folder: Path, zones: StatZones, block: int) -> list[dict]:
    """Rows (zone, layer, code, name, pixels, km2) over every cell, nodata as code 0."""
    counts = {layer: np.zeros((len(zones.names) + 1, 256), np.int64) for layer in ("landcover", "fuel")}
    for cell in cells:
        with rasterio.open(folder / cell.name / "landcover.tif") as lc, \
                rasterio.open(folder / cell.name / "fuel.tif") as fu:
            for r0 in range(0, cell.height, block):
                for c0 in range(0, cell.width, block):
                    window = Window(c0, r0, min(block, cell.width - c0), min(block, cell.height - r0))
                    transform = rasterio.windows.transform(window, cell.transform)
                    index = zones.rasterize(lc.crs, transform, (int(window.height), int(window.width)))
                    for layer, ds in (("landcover", lc), ("fuel", fu)):
                        codes = ds.read(1, window=window).astype(np.int64)
                        counts[layer] += np.bincount((index.astype(np.int64) * 256 + codes).ravel(),
                                                     minlength=counts[layer].size).reshape(counts[layer].shape)
    names = {"landcover": {0: "nodata", **{c.code: c.name for c in CLASSES}},
             "fuel": {0: "nodata", **{k: f"{v[0]} {v[1]}" for k, v in FBFM40.items()}}}
    rows = []
    for z, zone in enumerate(zones.names, start=1):
        for layer, table in counts.items():
            for code in np.flatnonzero(table[z]):
                px = int(table[z, code])
                rows.append({"zone": zone, "layer": layer, "code": int(code),
                             "name": names[layer].get(int(code), str(code)), "pixels": px,
                             "km2": round(px * KM2_PER_PIXEL, 6)})
    return rows


def write_statistics(rows: list[dict], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["zone", "layer", "code", "name", "pixels", "km2"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return path
