"""Reading the split file (city_id,tile_id,split) written by the split stage."""

from __future__ import annotations

import csv
from pathlib import Path

from landcover.dataset import TileRef, tile_ref
from landcover.errors import LandcoverError


def read_split(split_file: Path, data_root: Path, split: str) -> list[TileRef]:
    path = Path(split_file)
    if not path.is_file():
        raise LandcoverError(f"{path}: split file not found (run `landcover split` first)")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not {"city_id", "tile_id", "split"} <= set(reader.fieldnames or []):
            raise LandcoverError(f"{path}: needs columns city_id,tile_id,split")
        return [tile_ref(data_root, r["city_id"], r["tile_id"]) for r in reader if r["split"] == split]
