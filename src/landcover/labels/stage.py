"""Labels stage: one implementation behind `landcover labels` and the build-dataset flow.

Every tile of a dataset gets `label.tif` (uint8, 0 unlabelled, the class colour table) on its own
grid, from one or more references in priority order: where the first leaves a pixel unlabelled,
the next may label it (for example OpenStreetMap roads over ESA WorldCover). `label.json` beside it
records the references (with checksums), the crosswalk and the class counts; a rerun with the same
request skips the tile. A `label.tif` that this stage did not write is never replaced unless asked.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from landcover import __version__
from landcover.bands import SEASONS
from landcover.classes import CLASSES, colormap
from landcover.config import Params
from landcover.dataset import DataContractError, TileRef, discover_tiles, open_raster
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_path, atomic_write_json, sha256_file, tile_lock
from landcover.labels.burn import Grid, burn_raster, burn_vector, is_vector
from landcover.labels.crosswalk import Crosswalk
from landcover.lineage import params_hash
from landcover.outcomes import TileOutcome, TileTally
from landcover.parallel import MapFn, thread_map

RECORD = "label.json"


def tile_grid(tile: TileRef) -> Grid:
    with open_raster(tile.season_path(SEASONS[0])) as src:
        return Grid(src.crs, src.transform, (src.height, src.width))


def write_label(path: Path, grid: Grid, codes: np.ndarray, tags: dict[str, str]) -> None:
    h, w = grid.shape
    profile = dict(driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=grid.crs, transform=grid.transform,
                   nodata=None, compress="deflate", predictor=2)
    if min(h, w) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(codes, 1)
        dst.write_colormap(1, colormap())
        dst.set_band_description(1, "land cover class (0 = unlabelled)")
        dst.update_tags(**{f"class_{c.code}": c.name for c in CLASSES}, **tags)


class TileLabeller:
    """Per-tile work (the unit a flow maps)."""

    def __init__(self, p: Params, references: list[Path], attribute: str | None = None, preset: str | None = None,
                 overwrite: bool = False) -> None:
        lp = p.labels
        self.references = [Path(r) for r in references]
        missing = [str(r) for r in self.references if not r.exists()]
        if missing:
            raise DataContractError(f"{missing[0]}: reference not found")
        self.attribute = attribute or lp.attribute
        self.crosswalk = Crosswalk.build(preset or lp.preset, lp.crosswalk)
        self.lines_all_touched, self.overwrite = lp.lines_all_touched, overwrite
        self.request = {
            "references": [{"path": str(r.resolve()), "sha256": sha256_file(r) if r.is_file() else "folder"}
                           for r in self.references],
            "attribute": self.attribute, "crosswalk": self.crosswalk.describe(),
            "lines_all_touched": self.lines_all_touched}
        self.request_hash = params_hash(self.request)

    def _record(self, tile: TileRef) -> dict | None:
        import json

        try:
            return json.loads((tile.directory / RECORD).read_text())
        except (OSError, ValueError):
            return None

    def __call__(self, tile: TileRef) -> TileOutcome:
        with tile_lock(tile.directory):
            record = self._record(tile)
            if record and record.get("request_hash") == self.request_hash and tile.label_path.is_file():
                return TileOutcome.skip(tile.key)
            if tile.label_path.exists() and record is None and not self.overwrite:
                raise LandcoverError(f"{tile.label_path}: a label this stage did not write; refusing to replace "
                                     "it (--overwrite replaces it)")
            grid = tile_grid(tile)
            codes = np.zeros(grid.shape, np.uint8)
            unmapped: Counter = Counter()
            unmapped_pixels = 0
            for ref in self.references:  # the first reference that labels a pixel wins
                burned = (burn_vector(ref, grid, self.crosswalk, self.attribute, self.lines_all_touched)
                          if is_vector(ref) else burn_raster(ref, grid, self.crosswalk))
                np.copyto(codes, burned.codes, where=codes == 0)
                unmapped.update(burned.unmapped)
                unmapped_pixels += burned.unmapped_pixels
            (tile.directory / RECORD).unlink(missing_ok=True)
            write_label(tile.label_path, grid, codes, {"references": ", ".join(r.name for r in self.references),
                                                       "crosswalk": self.crosswalk.name})
            counts = np.bincount(codes.ravel(), minlength=11)
            atomic_write_json(tile.directory / RECORD, {
                "tile": tile.key, "request": self.request, "request_hash": self.request_hash,
                "class_pixels": {("unlabelled" if c == 0 else CLASSES[c - 1].name): int(counts[c]) for c in range(11)},
                "unmapped_values": dict(unmapped), "unmapped_pixels": unmapped_pixels,
                "software_version": __version__})
            return TileOutcome.wrote(tile.key, labelled_fraction=float(1 - counts[0] / codes.size),
                                     unmapped=dict(unmapped), unmapped_pixels=unmapped_pixels)


@dataclass
class LabelsResult(TileTally):
    data: Path
    labelled_fraction: dict[str, float] = field(default_factory=dict)
    unmapped: Counter = field(default_factory=Counter)
    unmapped_pixels: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"data": str(self.data), **self.tally(), "labelled_fraction": self.labelled_fraction,
                "unmapped_values": dict(self.unmapped.most_common()), "unmapped_pixels": self.unmapped_pixels,
                "seconds": round(self.seconds, 2)}


def run_labels(p: Params, data: Path, references: list[Path], attribute: str | None = None, preset: str | None = None,
               overwrite: bool = False, map_fn: MapFn | None = None) -> LabelsResult:
    start = time.perf_counter()
    tiles, bad = discover_tiles(Path(data))
    if not tiles and not bad:
        raise LandcoverError(f"{data}: no tile folders found")
    worker = TileLabeller(p, references, attribute, preset, overwrite)
    result = LabelsResult(Path(data), failed={b.path: b.reason for b in bad})
    for tile, outcome in zip(tiles, (map_fn or thread_map(2, catch_errors=True))(worker, tiles), strict=True):
        if written := result.record(tile.key, outcome):
            result.labelled_fraction[tile.key] = round(written.figures["labelled_fraction"], 4)
            result.unmapped.update(written.figures["unmapped"])
            result.unmapped_pixels += written.figures["unmapped_pixels"]
    result.seconds = time.perf_counter() - start
    return result
