"""What the split reads: cities, the tiles to split and the class pixels of each city.

Class pixels come from each tile's `label.tif` when the dataset has tiles/, else from the nominal
class mix of `class_mix.csv` beside a `tiles.csv` manifest (a dataset without rasters), else none.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from landcover.classes import NUM_CLASSES
from landcover.dataset import (
    CLIMATE_ZONES,
    DataContractError,
    TileRef,
    discover_tiles,
    read_cities,
    read_manifest,
    tile_ref,
)
from landcover.split.assign import CityTable
from landcover.split.errors import SplitError

CITIES_FILE = "cities.csv"
MANIFEST_FILE = "tiles.csv"
CLASS_MIX_FILE = "class_mix.csv"


def label_class_pixels(tile: TileRef, rows_per_read: int = 256) -> np.ndarray:
    """(10,) labelled pixels per class of one tile, read in row strips (streaming, block-aligned)."""
    path = tile.label_path
    counts = np.zeros(256, dtype=np.int64)
    try:
        with rasterio.open(path) as src:
            if src.count != 1 or src.dtypes[0] != "uint8":
                raise DataContractError(
                    f"{path}: label must be 1 band uint8, got {src.count} {src.dtypes[0]}"
                )
            block_h = src.block_shapes[0][0]
            step = max(block_h, rows_per_read // block_h * block_h)
            for row in range(0, src.height, step):
                window = Window(0, row, src.width, min(step, src.height - row))
                counts += np.bincount(src.read(1, window=window).ravel(), minlength=256)
    except rasterio.errors.RasterioError as exc:
        raise DataContractError(f"{path}: cannot read: {exc}") from exc
    return counts[1 : NUM_CLASSES + 1]


def read_class_mix(path: Path) -> dict[str, np.ndarray]:
    """class_mix.csv (city_id,class_1..class_10): nominal class pixel shares per city."""
    cols = [f"class_{c}" for c in range(1, NUM_CLASSES + 1)]
    out: dict[str, np.ndarray] = {}
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ["city_id", *cols] if c not in (reader.fieldnames or [])]
        if missing:
            raise DataContractError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                mix = np.array([float(row[c]) for c in cols])
            except ValueError as exc:
                raise DataContractError(f"{path}:{line}: class shares not numeric") from exc
            if (mix < 0).any() or mix.sum() <= 0:
                raise DataContractError(
                    f"{path}:{line}: class shares must be >= 0 with a positive sum"
                )
            out[row["city_id"]] = mix / mix.sum()
    return out


@dataclass
class SplitInputs:
    table: CityTable
    tiles: list[tuple[str, str]]  # (city_id, tile_id) in use, sorted
    zone_of: dict[str, str]
    class_source: str
    excluded_tiles: int = 0  # not listed in --valid
    skipped_entries: int = 0  # folders with ids outside the contract
    cities_without_tiles: list[str] = field(default_factory=list)


def _list_tiles(data_root: Path) -> tuple[list[tuple[str, str]], str, int]:
    if (data_root / "tiles").is_dir() or not (data_root / MANIFEST_FILE).is_file():
        refs, bad = discover_tiles(data_root)
        return [(t.city_id, t.tile_id) for t in refs], "tiles", len(bad)
    return read_manifest(data_root / MANIFEST_FILE), "manifest", 0


def load_inputs(data_root: Path, valid_tiles: Path | None = None) -> SplitInputs:
    """Cities, the tiles to split (only those in `valid_tiles` when given) and class pixels."""
    data_root = Path(data_root)
    cities = read_cities(data_root / CITIES_FILE)
    tiles, source, skipped = _list_tiles(data_root)
    if len(set(tiles)) != len(tiles):
        raise DataContractError(f"{data_root}: duplicate tiles in the tile list")
    unknown = sorted({c for c, _ in tiles} - set(cities))
    if unknown:
        raise DataContractError(
            f"{data_root}: tiles of cities missing from {CITIES_FILE}: {', '.join(unknown[:5])}"
        )
    excluded = 0
    if valid_tiles is not None:
        if not Path(valid_tiles).is_file():
            raise SplitError(f"{valid_tiles}: valid tiles file not found")
        valid = set(read_manifest(Path(valid_tiles)))
        stale = sorted(valid - set(tiles))
        if stale:
            raise SplitError(
                f"{valid_tiles}: {len(stale)} tile(s) not in the dataset {data_root}, "
                f"e.g. {stale[0][0]}/{stale[0][1]} (validation report from another dataset?)"
            )
        kept = [t for t in tiles if t in valid]
        excluded = len(tiles) - len(kept)
        tiles = kept
    if not tiles:
        raise SplitError(
            f"{data_root}: no tiles to split (expected tiles/ or {MANIFEST_FILE}"
            f"{', or tiles listed in ' + str(valid_tiles) if valid_tiles else ''})"
        )
    tiles = sorted(tiles)
    city_ids = sorted({c for c, _ in tiles})
    index = {c: i for i, c in enumerate(city_ids)}
    tile_counts = np.zeros(len(city_ids), dtype=np.int64)
    for c, _ in tiles:
        tile_counts[index[c]] += 1
    class_pixels = np.zeros((len(city_ids), NUM_CLASSES))
    if source == "tiles":
        class_source = "label.tif"
        for c, t in tiles:
            ref = tile_ref(data_root, c, t)
            if ref.has_label:
                class_pixels[index[c]] += label_class_pixels(ref)
    elif (data_root / CLASS_MIX_FILE).is_file():
        class_source = CLASS_MIX_FILE
        mix = read_class_mix(data_root / CLASS_MIX_FILE)
        missing = [c for c in city_ids if c not in mix]
        if missing:
            raise DataContractError(
                f"{data_root / CLASS_MIX_FILE}: no class mix for {', '.join(missing[:5])}"
            )
        for c in city_ids:  # tile-equivalents: nominal tiles have equal pixel counts
            class_pixels[index[c]] = mix[c] * tile_counts[index[c]]
    else:
        class_source = "none"
    zone_names = tuple(
        z for z in CLIMATE_ZONES if any(cities[c].climate_zone == z for c in city_ids)
    )
    zones = np.array([zone_names.index(cities[c].climate_zone) for c in city_ids], dtype=np.int64)
    table = CityTable(tuple(city_ids), zone_names, zones, tile_counts, class_pixels)
    return SplitInputs(
        table=table,
        tiles=tiles,
        zone_of={c: cities[c].climate_zone for c in city_ids},
        class_source=class_source,
        excluded_tiles=excluded,
        skipped_entries=skipped,
        cities_without_tiles=sorted(set(cities) - set(city_ids)),
    )
