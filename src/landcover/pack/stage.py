"""The pack stage: one implementation behind `landcover pack`, the DVC stage and the flow.

Builds beside the target (`<out>.partial`) and swaps it into place at the end, so a reader never
sees a half-built store. A killed build resumes: tiles already written (a marker each) are kept
when the inputs and settings are the same.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import zarr

from landcover.config import Params
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_write_json
from landcover.lineage import data_version_of, file_hash, params_hash
from landcover.model.normalization import compute_norm_stats
from landcover.outputs import side_output
from landcover.pack.writer import write_tile
from landcover.parallel import thread_map
from landcover.splitfile import read_split
from landcover.trainstore.layout import ATTR, FORMAT, PIXEL_BANDS, StoredTile, StoreMeta

PACKED = ("train", "val")  # what training reads; test tiles stay GeoTIFFs (evaluation reads them)
BUILD_FILE = "build.json"  # inside <out>.partial: what the partial build is of


@dataclass
class PackResult:
    out: Path
    tiles: dict[str, int]
    bytes: int
    source_bytes: int
    seconds: float
    resumed: int = 0
    written: list[str] = field(default_factory=list)
    metrics_path: Path | None = None

    def metrics(self) -> dict:
        return {"tiles_train": self.tiles.get("train", 0), "tiles_val": self.tiles.get("val", 0),
                "store_mb": round(self.bytes / 1e6, 1), "geotiff_mb": round(self.source_bytes / 1e6, 1),
                "store_to_geotiff_size": round(self.bytes / max(self.source_bytes, 1), 3),
                "build_s": round(self.seconds, 1), "tiles_resumed": self.resumed}


def _tree_bytes(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def run_pack(p: Params, data_root: Path, split_file: Path, out: Path | None = None,
             metrics_path: Path | None = None, progress=None) -> PackResult:
    """Pack and write the store's figures (`metrics_path`; beside an explicit `out`, else params)."""
    start = time.perf_counter()
    metrics_path = side_output(metrics_path, out, lambda o: o.with_suffix(".json"), p.pack.metrics)
    out = Path(out or p.pack.out)
    splits = {s: read_split(split_file, data_root, s) for s in PACKED}
    for name, tiles in splits.items():
        if not tiles:
            raise LandcoverError(f"{split_file}: no {name} tiles to pack")
    partial = out.with_name(out.name + ".partial")
    _recover(out)
    # what a partial build is of: a tile kept from it must come from the same bytes (sizes and
    # modification times: `data_version` is "untracked" for a dataset without a .dvc file)
    build = {"format": [FORMAT, PIXEL_BANDS], "split_hash": file_hash(split_file),
             "data_version": data_version_of(data_root),
             "settings": params_hash(p.pack.model_dump(mode="json", exclude={"out", "workers", "metrics"})),
             "tiles": {s: {t.key: _stamp(t) for t in ts} for s, ts in splits.items()}}
    build_path = partial / BUILD_FILE
    if partial.exists() and (not build_path.exists() or json.loads(build_path.read_text()) != build):
        shutil.rmtree(partial)  # a partial build of other inputs: start again
    partial.mkdir(parents=True, exist_ok=True)
    atomic_write_json(build_path, build)
    done_dir = partial / ".done"
    done_dir.mkdir(exist_ok=True)
    group = zarr.open_group(str(partial), mode="a", zarr_format=3)

    def marker(split: str, key: str) -> Path:
        return done_dir / f"{split}__{key.replace('/', '__')}.json"

    jobs = [(s, t) for s, ts in splits.items() for t in ts]
    todo = [(s, t) for s, t in jobs if not marker(s, t.key).exists()]
    total, finished = len(jobs), len(jobs) - len(todo)

    def pack_one(job) -> StoredTile:
        split, tile = job
        stored = write_tile(group, split, tile, p.pack.chunk, p.pack.compression)
        atomic_write_json(marker(split, tile.key), [stored.key, stored.split, stored.height, stored.width])
        return stored

    written = []
    for stored in thread_map(p.pack.workers)(pack_one, todo):
        written.append(stored.key)
        finished += 1
        if progress:
            progress(finished, total, stored.key)
    tiles = [StoredTile(*json.loads(marker(s, t.key).read_text())) for s, t in jobs]
    norm = compute_norm_stats(splits["train"])  # the same statistics the GeoTIFF path computes
    meta = StoreMeta(p.pack.chunk, p.pack.compression, build["data_version"], build["split_hash"],
                     norm.to_dict(), tiles)
    group.attrs.update({ATTR: meta.to_dict()})
    shutil.rmtree(done_dir)
    build_path.unlink()
    _swap_into_place(partial, out)
    source = [f for _, t in jobs for f in t.files()]
    result = PackResult(out, {s: len(ts) for s, ts in splits.items()}, _tree_bytes([out]), _tree_bytes(source),
                        time.perf_counter() - start, resumed=len(jobs) - len(todo), written=written,
                        metrics_path=metrics_path)
    if metrics_path is not None:
        atomic_write_json(metrics_path, result.metrics())
    return result


def _stamp(tile) -> list:
    try:
        return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in tile.files()]
    except OSError:
        return []  # a missing file is reported, with its name, when the tile is packed


def _recover(out: Path) -> None:
    """A swap killed between its two renames leaves the last good store at `<out>.old`: put it back."""
    old = out.with_name(out.name + ".old")
    if old.exists() and not out.exists():
        old.rename(out)


def _swap_into_place(partial: Path, out: Path) -> None:
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    partial.rename(out)
    if old.exists():
        shutil.rmtree(old)
