"""Which tiles make one area, and where each sits on the area's grid.

Tiles of one city share a map only when they share a CRS and a pixel grid: a UTM zone boundary
or a shifted origin is reported, never silently mixed (reprojecting a class map blurs its edges).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import rasterio
from affine import Affine
from rasterio.crs import CRS

GRID_TOLERANCE = 1e-6  # of a pixel


@dataclass(frozen=True)
class Placed:
    tile_dir: Path
    col: int
    row: int
    width: int
    height: int


@dataclass
class Area:
    name: str  # city id, with the EPSG code when the city spans several zones
    crs: CRS
    transform: Affine  # of the area's top-left pixel
    width: int
    height: int
    tiles: list[Placed] = field(default_factory=list)


@dataclass(frozen=True)
class TileGridInfo:
    tile_dir: Path
    crs: CRS
    transform: Affine
    width: int
    height: int


def read_grid(tile_dir: Path, name: str = "landcover.tif") -> TileGridInfo:
    with rasterio.open(tile_dir / name) as src:
        return TileGridInfo(tile_dir, src.crs, src.transform, src.width, src.height)


def plan_areas(city: str, tiles: list[TileGridInfo]) -> tuple[list[Area], dict[str, str]]:
    """Areas of one city's tiles, plus the tiles left out with the reason (key: tile folder)."""
    by_crs: dict[str, list[TileGridInfo]] = {}
    for t in tiles:
        by_crs.setdefault(t.crs.to_string(), []).append(t)
    areas, rejected = [], {}
    for crs_key, group in sorted(by_crs.items(), key=lambda kv: -len(kv[1])):
        name = city if len(by_crs) == 1 else f"{city}_{group[0].crs.to_epsg() or crs_key.replace(':', '')}"
        ref = group[0].transform
        res_x, res_y = ref.a, ref.e
        aligned = []
        for t in group:
            col, row = ~ref * (t.transform.c, t.transform.f)
            if (t.transform.a, t.transform.e) != (res_x, res_y) or t.transform.b or t.transform.d:
                rejected[str(t.tile_dir)] = f"pixel size {t.transform.a, t.transform.e} differs from {res_x, res_y}"
            elif abs(col - round(col)) > GRID_TOLERANCE or abs(row - round(row)) > GRID_TOLERANCE:
                rejected[str(t.tile_dir)] = f"origin is {col % 1:.3f}, {row % 1:.3f} px off the area's grid"
            else:
                aligned.append((t, round(col), round(row)))
        if not aligned:
            continue
        c0 = min(c for _, c, _ in aligned)
        r0 = min(r for _, _, r in aligned)
        c1 = max(c + t.width for t, c, _ in aligned)
        r1 = max(r + t.height for t, _, r in aligned)
        area = Area(name, group[0].crs, ref * Affine.translation(c0, r0), c1 - c0, r1 - r0)
        area.tiles = [Placed(t.tile_dir, c - c0, r - r0, t.width, t.height) for t, c, r in aligned]
        areas.append(area)
    return areas, rejected
