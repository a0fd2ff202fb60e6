"""The data contract (BRIEF section 2) in one place: layout, ids, cities and windowed reads.

Every stage finds tiles and reads pixels through this module, so the layout is known once.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from landcover.bands import NUM_BANDS, SEASONS
from landcover.errors import LandcoverError

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
CITY_COLUMNS = ("city_id", "name", "country", "lat", "lon", "climate_zone")
CLIMATE_ZONES = ("atlantic", "continental", "mediterranean", "alpine", "boreal", "pannonian")
LABEL_FILE = "label.tif"


class DataContractError(LandcoverError, ValueError):
    """Input that breaks the data contract; the message names the file and the problem."""


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.fullmatch(value))


def check_id(value: str, what: str, where: Path | str) -> str:
    if not is_valid_id(value):
        raise DataContractError(f"{where}: {what} {value!r} does not match [A-Za-z0-9_-]+")
    return value


@dataclass(frozen=True)
class City:
    city_id: str
    name: str
    country: str
    lat: float
    lon: float
    climate_zone: str


@dataclass(frozen=True)
class TileRef:
    """One tile folder `<root>/<city_id>/<tile_id>/`; paths are derived, never user-joined."""

    city_id: str
    tile_id: str
    directory: Path

    @property
    def key(self) -> str:
        return f"{self.city_id}/{self.tile_id}"

    def season_path(self, season: str) -> Path:
        if season not in SEASONS:
            raise ValueError(f"unknown season {season!r}")
        return self.directory / f"{season}.tif"

    @property
    def season_paths(self) -> dict[str, Path]:
        return {s: self.season_path(s) for s in SEASONS}

    @property
    def label_path(self) -> Path:
        return self.directory / LABEL_FILE

    @property
    def has_label(self) -> bool:
        return self.label_path.exists()

    def files(self) -> list[Path]:
        paths = list(self.season_paths.values())
        return paths + [self.label_path] if self.has_label else paths


def tiles_dir(root: Path) -> Path:
    """Accept a dataset root (holding `tiles/`) or a folder of city folders."""
    root = Path(root)
    return root / "tiles" if (root / "tiles").is_dir() else root


def read_cities(path: Path) -> dict[str, City]:
    path = Path(path)
    if not path.is_file():
        raise DataContractError(f"{path}: cities file not found")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CITY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataContractError(f"{path}: missing column(s) {', '.join(missing)}")
        cities: dict[str, City] = {}
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            city_id = check_id(row["city_id"], "city_id", where)
            if city_id in cities:
                raise DataContractError(f"{where}: duplicate city_id {city_id!r}")
            try:
                lat, lon = float(row["lat"]), float(row["lon"])
            except ValueError as exc:
                raise DataContractError(f"{where}: lat/lon not numeric") from exc
            zone = row["climate_zone"].strip().lower()
            if zone not in CLIMATE_ZONES:
                raise DataContractError(f"{where}: unknown climate_zone {zone!r}")
            cities[city_id] = City(city_id, row["name"], row["country"], lat, lon, zone)
    return cities


def write_cities(path: Path, cities: Iterable[City]) -> None:
    from landcover.io_utils import atomic_write_text

    rows = [",".join(CITY_COLUMNS)]
    for c in cities:
        rows.append(f"{c.city_id},{c.name},{c.country},{c.lat:.4f},{c.lon:.4f},{c.climate_zone}")
    atomic_write_text(Path(path), "\n".join(rows) + "\n")


@dataclass(frozen=True)
class BadEntry:
    """A folder that cannot be a tile (bad id); reported, never used as a path."""

    path: str
    reason: str


def discover_tiles(root: Path) -> tuple[list[TileRef], list[BadEntry]]:
    """All `<city_id>/<tile_id>/` folders under the dataset root, sorted; bad names reported."""
    base = tiles_dir(root)
    if not base.is_dir():
        raise DataContractError(f"{base}: tiles folder not found")
    tiles: list[TileRef] = []
    bad: list[BadEntry] = []
    for city_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if not is_valid_id(city_dir.name):
            bad.append(BadEntry(str(city_dir), f"city_id {city_dir.name!r} not [A-Za-z0-9_-]+"))
            continue
        for tile_dir in sorted(p for p in city_dir.iterdir() if p.is_dir()):
            if not is_valid_id(tile_dir.name):
                bad.append(BadEntry(str(tile_dir), f"tile_id {tile_dir.name!r} not [A-Za-z0-9_-]+"))
                continue
            if tile_dir.is_symlink():
                bad.append(BadEntry(str(tile_dir), "tile folder is a symlink"))
                continue
            tiles.append(TileRef(city_dir.name, tile_dir.name, tile_dir))
    return tiles, bad


def tile_ref(root: Path, city_id: str, tile_id: str) -> TileRef:
    """A tile from ids read from a list (split file, manifest): ids are checked before use."""
    check_id(city_id, "city_id", root)
    check_id(tile_id, "tile_id", root)
    return TileRef(city_id, tile_id, tiles_dir(root) / city_id / tile_id)


def read_manifest(path: Path) -> list[tuple[str, str]]:
    """`tiles.csv` (city_id,tile_id): the tile list of a manifest-only dataset."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"city_id", "tile_id"} <= set(reader.fieldnames):
            raise DataContractError(f"{path}: needs columns city_id,tile_id")
        out = []
        for line, row in enumerate(reader, start=2):
            out.append(
                (
                    check_id(row["city_id"], "city_id", f"{path}:{line}"),
                    check_id(row["tile_id"], "tile_id", f"{path}:{line}"),
                )
            )
    return out


def read_season_window(path: Path, window: Window | None = None) -> np.ndarray:
    """(10, h, w) uint16 from one season file; errors name the file."""
    try:
        with rasterio.open(path) as src:
            if src.count != NUM_BANDS:
                raise DataContractError(f"{path}: {src.count} bands, expected {NUM_BANDS}")
            if src.dtypes[0] != "uint16":
                raise DataContractError(f"{path}: dtype {src.dtypes[0]}, expected uint16")
            return src.read(window=window, boundless=False)
    except rasterio.errors.RasterioError as exc:
        raise DataContractError(f"{path}: cannot read: {exc}") from exc


def read_stack(tile: TileRef, window: Window | None = None, seasons: tuple[str, ...] = SEASONS) -> np.ndarray:
    """(40, h, w) uint16 season-major stack: the model's input layout."""
    return np.concatenate([read_season_window(tile.season_path(s), window) for s in seasons], axis=0)


def read_label(tile: TileRef, window: Window | None = None) -> np.ndarray:
    path = tile.label_path
    try:
        with rasterio.open(path) as src:
            if src.count != 1 or src.dtypes[0] != "uint8":
                raise DataContractError(f"{path}: label must be 1 band uint8, got {src.count} {src.dtypes[0]}")
            return src.read(1, window=window)
    except rasterio.errors.RasterioError as exc:
        raise DataContractError(f"{path}: cannot read: {exc}") from exc


@contextmanager
def open_raster(path: Path) -> Iterator[rasterio.io.DatasetReader]:
    """rasterio.open whose errors name the file (and never a traceback from GDAL's depths)."""
    if not Path(path).is_file():
        raise DataContractError(f"{path}: file missing")
    try:
        with rasterio.open(path) as src:
            yield src
    except rasterio.errors.RasterioError as exc:
        raise DataContractError(f"{path}: cannot read: {exc}") from exc


def tile_shape(tile: TileRef) -> tuple[int, int]:
    with open_raster(tile.season_path(SEASONS[0])) as src:
        return src.height, src.width


def check_tile(tile: TileRef, need_label: bool = True) -> tuple[int, int]:
    """Open every file of a tile and check bands, dtype and the shared grid; returns (h, w).
    Cheap (headers only): the training loader and inference call it before reading pixels."""
    grid = None
    first = None
    paths = list(tile.season_paths.values()) + ([tile.label_path] if need_label else [])
    for path in paths:
        with open_raster(path) as src:
            is_label = path == tile.label_path
            count, dtype = (1, "uint8") if is_label else (NUM_BANDS, "uint16")
            if src.count != count or src.dtypes[0] != dtype:
                raise DataContractError(
                    f"{path}: {src.count} band(s) of {src.dtypes[0]}, expected {count} of {dtype}")
            this = (src.crs, src.transform, src.shape)
            if grid is None:
                grid, first = this, path
            elif this[0] != grid[0] or not this[1].almost_equals(grid[1], 1e-6) or this[2] != grid[2]:
                what = "CRS" if this[0] != grid[0] else "shape" if this[2] != grid[2] else "transform"
                raise DataContractError(f"{path}: {what} differs from {first.name} (files must share one grid)")
    return grid[2]
