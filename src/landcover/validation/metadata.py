"""Per-file and per-tile raster facts, read with rasterio block by block (never a whole file).

`tile_row` turns one tile folder into one flat row (a dict of plain values) that the Great
Expectations suite checks. Nothing here decides pass or fail: a problem only becomes a value
(an error message, a count, a fraction) for the suite to judge. Reading never raises: any
exception while opening or decoding a file becomes that file's `read_error`, naming the file.
Files are only opened for reading; GDAL's .aux.xml side files are switched off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from landcover.bands import NODATA_VALUE, SEASONS
from landcover.dataset import BadEntry, TileRef, is_valid_id

SATURATED_VALUE = 65535  # uint16 ceiling: Sentinel-2 L2A marks saturated pixels with it
LABEL_CODES = (0, 10)  # 0 unlabelled, 1..10 classes
MAX_WINDOW_PIXELS = 1 << 20  # striped files are read in row groups of about this many pixels

SEASON_FIELDS = (
    "read_error", "band_count", "dtype", "band_names", "crs", "pixel_size_x", "pixel_size_y",
    "nodata_fraction", "nonfinite_count", "band_mean_min", "band_mean_max", "band_std_min",
    "saturated_fraction_max",
)
LABEL_FIELDS = ("read_error", "band_count", "dtype", "code_min", "code_max", "labelled_fraction")
TILE_FIELDS = (
    "tile_key", "city_id", "tile_id", "climate_zone", "tile_key_folded", "folder_problem",
    "missing_files", "grid_mismatch",
)


def columns(seasons: tuple[str, ...] = SEASONS) -> list[str]:
    """Every column of the tile table, in a fixed order."""
    cols = list(TILE_FIELDS)
    for season in seasons:
        cols += [f"{season}_{f}" for f in SEASON_FIELDS]
    cols += [f"label_{f}" for f in LABEL_FIELDS]
    return cols


def iter_windows(src: rasterio.io.DatasetReader) -> Iterator[Window]:
    """The file's own blocks when tiled; groups of whole strips when striped."""
    block_h, block_w = src.block_shapes[0]
    if block_w < src.width:
        for _, window in src.block_windows(1):
            yield window
        return
    rows = max(block_h, (MAX_WINDOW_PIXELS // max(src.width, 1)) // block_h * block_h)
    for row in range(0, src.height, rows):
        yield Window(0, row, src.width, min(rows, src.height - row))


def describe_error(exc: BaseException, path: Path) -> str:
    """One line naming the file (by name, not the machine's absolute path) and the problem."""
    parts = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = " ".join(str(exc).split()).replace(str(path), path.name)
        text = text.removeprefix(f"{path.name}: ")
        if text and "See previous exception" not in text:
            parts.append(text)
        exc = exc.__cause__ or exc.__context__
    message = "; ".join(dict.fromkeys(parts)) or "unreadable"
    return f"{path.name}: {message}"


def _crs_text(crs: rasterio.crs.CRS | None) -> str:
    if crs is None:
        return "missing"
    kind = "projected" if crs.is_projected else "geographic" if crs.is_geographic else "other"
    epsg = crs.to_epsg()
    return f"{kind} EPSG:{epsg}" if epsg else f"{kind} {crs.to_string()[:80]}"


def _grid(src: rasterio.io.DatasetReader) -> tuple:
    t = src.transform
    return (
        src.crs.to_string() if src.crs else "missing",
        tuple(round(v, 6) for v in (t.a, t.b, t.c, t.d, t.e, t.f)),
        src.height,
        src.width,
    )


class _BandStats:
    """Per-band count, mean and squared deviations merged block by block (Chan et al.)."""

    def __init__(self, bands: int) -> None:
        self.n = np.zeros(bands)
        self.mean = np.zeros(bands)
        self.m2 = np.zeros(bands)
        self.saturated = np.zeros(bands)

    def add(self, x: np.ndarray, valid: np.ndarray) -> None:
        n_b = valid.sum(axis=(1, 2)).astype(np.float64)
        s_b = np.where(valid, x, 0.0).sum(axis=(1, 2))
        mean_b = np.divide(s_b, n_b, out=np.zeros_like(s_b), where=n_b > 0)
        m2_b = (np.where(valid, x - mean_b[:, None, None], 0.0) ** 2).sum(axis=(1, 2))
        self.saturated += (valid & (x >= SATURATED_VALUE)).sum(axis=(1, 2))
        total = self.n + n_b
        delta = mean_b - self.mean
        safe = np.where(total > 0, total, 1.0)
        self.mean = self.mean + delta * n_b / safe
        self.m2 = self.m2 + m2_b + delta**2 * self.n * n_b / safe
        self.n = total

    def summary(self) -> dict[str, float | None]:
        seen = self.n > 0
        if not seen.any():  # all nodata: nothing to judge here (the nodata check reports it)
            return {"band_mean_min": None, "band_mean_max": None, "band_std_min": None,
                    "saturated_fraction_max": None}
        std = np.sqrt(self.m2[seen] / self.n[seen])
        return {
            "band_mean_min": float(self.mean[seen].min()),
            "band_mean_max": float(self.mean[seen].max()),
            "band_std_min": float(std.min()),
            "saturated_fraction_max": float((self.saturated[seen] / self.n[seen]).max()),
        }


class _ExactBandSums:
    """Per-band count, sum and sum of squares of unsigned 8/16-bit pixels, exact: float64 holds
    every integer below 2**53, so a part of at most 2**20 pixels sums exactly, and the parts add up
    in Python ints. A few passes over each block instead of the float merge's dozen."""

    PART = 1 << 20  # pixels: 2**20 * 65535**2 < 2**53

    def __init__(self, bands: int) -> None:
        self.n = [0] * bands
        self.s = [0] * bands
        self.q = [0] * bands
        self.saturated = [0] * bands

    def add(self, block: np.ndarray, is_nodata: np.ndarray, nodata: int | None) -> None:
        bands, h, w = block.shape
        k = int(is_nodata.sum())  # nodata pixels hold the nodata value in every band
        rows = max(1, self.PART // max(w, 1))
        for r in range(0, h, rows):
            x = block[:, r : r + rows].reshape(bands, -1).astype(np.float64)
            sums = x.sum(axis=1)
            squares = np.einsum("ij,ij->i", x, x)
            for b in range(bands):
                self.s[b] += int(sums[b])
                self.q[b] += int(squares[b])
        if k and nodata:
            for b in range(bands):
                self.s[b] -= k * nodata
                self.q[b] -= k * nodata * nodata
        for b in range(bands):
            self.n[b] += is_nodata.size - k
        if block.max() >= SATURATED_VALUE:
            counts = np.count_nonzero(block >= SATURATED_VALUE, axis=(1, 2))
            for b in range(bands):
                self.saturated[b] += int(counts[b]) - (k if nodata is not None and nodata >= SATURATED_VALUE else 0)

    def summary(self) -> dict[str, float | None]:
        seen = [b for b, n in enumerate(self.n) if n > 0]
        if not seen:
            return {"band_mean_min": None, "band_mean_max": None, "band_std_min": None,
                    "saturated_fraction_max": None}
        means = [self.s[b] / self.n[b] for b in seen]
        stds = [math.sqrt(max(self.q[b] * self.n[b] - self.s[b] ** 2, 0) / self.n[b] ** 2) for b in seen]
        return {
            "band_mean_min": float(min(means)),
            "band_mean_max": float(max(means)),
            "band_std_min": float(min(stds)),
            "saturated_fraction_max": float(max(self.saturated[b] / self.n[b] for b in seen)),
        }


def _exact_nodata(nodata: float, dtype: np.dtype) -> int | None:
    """The nodata value as a pixel value of `dtype`, or None when no pixel can hold it."""
    info = np.iinfo(dtype)
    if float(nodata).is_integer() and info.min <= nodata <= info.max:
        return int(nodata)
    return None


def _season_pixels_uint(src: rasterio.io.DatasetReader, nodata: float) -> dict[str, Any]:
    value = _exact_nodata(nodata, np.dtype(src.dtypes[0]))
    sums = _ExactBandSums(src.count)
    total = nodata_px = 0
    for window in iter_windows(src):
        block = src.read(window=window)
        if value is None:
            is_nodata = np.zeros(block.shape[1:], bool)
        elif value == 0:
            is_nodata = np.bitwise_or.reduce(block, axis=0) == 0
        else:
            is_nodata = (block == value).all(axis=0)
        total += is_nodata.size
        nodata_px += int(is_nodata.sum())
        sums.add(block, is_nodata, value)
    return {
        "nodata_fraction": nodata_px / total if total else 1.0,
        "nonfinite_count": 0,  # integers are always finite
        **sums.summary(),
    }


def _season_pixels(src: rasterio.io.DatasetReader) -> dict[str, Any]:
    nodata = src.nodata if src.nodata is not None else NODATA_VALUE
    dtypes = {np.dtype(d) for d in src.dtypes}
    if len(dtypes) == 1 and all(np.issubdtype(d, np.unsignedinteger) and d.itemsize <= 2 for d in dtypes):
        return _season_pixels_uint(src, nodata)  # the contract's uint16: exact integer sums, fast
    stats = _BandStats(src.count)
    total = nodata_px = nonfinite = 0
    for window in iter_windows(src):
        block = src.read(window=window)  # (bands, h, w): one block of every band
        x = block.astype(np.float64)
        finite = np.isfinite(x)
        nonfinite += int(x.size - finite.sum())
        is_nodata = (x == nodata).all(axis=0)  # a pixel is nodata when every band holds nodata
        total += is_nodata.size
        nodata_px += int(is_nodata.sum())
        stats.add(x, finite & ~is_nodata[None])
    return {
        "nodata_fraction": nodata_px / total if total else 1.0,
        "nonfinite_count": nonfinite,
        **stats.summary(),
    }


def _label_pixels(src: rasterio.io.DatasetReader) -> dict[str, Any]:
    total = labelled = 0
    lo, hi = np.inf, -np.inf
    for window in iter_windows(src):
        block = src.read(1, window=window)
        values = block[np.isfinite(block)] if np.issubdtype(block.dtype, np.floating) else block
        total += block.size
        if values.size:
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
            labelled += int(((values >= 1) & (values <= LABEL_CODES[1])).sum())
    return {
        "code_min": lo if np.isfinite(lo) else None,
        "code_max": hi if np.isfinite(hi) else None,
        "labelled_fraction": labelled / total if total else 0.0,
    }


def file_metadata(path: Path, kind: str) -> tuple[dict[str, Any], tuple | None]:
    """(fields, grid) of one season (`kind="season"`) or label file; grid None if unopenable."""
    fields = SEASON_FIELDS if kind == "season" else LABEL_FIELDS
    row: dict[str, Any] = dict.fromkeys(fields)
    grid = None
    try:
        if not path.is_file():
            raise OSError("not a regular file")
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path) as src:
            grid = _grid(src)
            row["band_count"] = src.count
            row["dtype"] = ",".join(sorted(set(src.dtypes)))
            if kind == "season":
                row["band_names"] = ",".join(d or "" for d in src.descriptions)
                row["crs"] = _crs_text(src.crs)
                row["pixel_size_x"], row["pixel_size_y"] = (float(v) for v in src.res)
                pixels = _season_pixels(src)
            else:
                pixels = _label_pixels(src)
        row.update(pixels)  # only once every block has decoded
    except Exception as exc:  # noqa: BLE001 - any failure is a finding about the file
        row["read_error"] = describe_error(exc, path)
    return row, grid


def _grid_mismatch(grids: dict[str, tuple]) -> str | None:
    """Describe files off the tile's grid (the grid most files share), or None."""
    if len(set(grids.values())) <= 1:
        return None
    order = list(grids.values())
    reference = max(order, key=lambda g: (order.count(g), -order.index(g)))
    names = ("crs", "transform", "height", "width")
    problems = []
    for name, grid in grids.items():
        if grid != reference:
            diffs = [f"{n} {a} != {b}" for n, a, b in zip(names, grid, reference, strict=True) if a != b]
            problems.append(f"{name}: {', '.join(diffs)}")
    return "; ".join(problems)


def empty_row(city_id: str, tile_id: str, seasons: tuple[str, ...] = SEASONS) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(columns(seasons))
    key = f"{city_id}/{tile_id}"
    row.update(tile_key=key, city_id=city_id, tile_id=tile_id, tile_key_folded=key.casefold())
    return row


def tile_row(tile: TileRef, seasons: tuple[str, ...] = SEASONS, require_label: bool = True) -> dict[str, Any]:
    """Read every file of one tile (streaming) into one flat row."""
    row = empty_row(tile.city_id, tile.tile_id, seasons)
    if not tile.directory.is_dir():
        row["folder_problem"] = "tile folder not found"
        return row
    missing: list[str] = []
    grids: dict[str, tuple] = {}
    files = [(s, tile.season_path(s), "season") for s in seasons]
    if require_label or tile.label_path.exists():
        files.append(("label", tile.label_path, "label"))
    for prefix, path, kind in files:
        if not path.exists() and not path.is_symlink():
            missing.append(path.name)
            continue
        fields, grid = file_metadata(path, kind)
        row.update({f"{prefix}_{k}": v for k, v in fields.items()})
        if grid is not None:
            grids[path.name] = grid
    row["missing_files"] = ",".join(missing) or None
    row["grid_mismatch"] = _grid_mismatch(grids)
    return row


def bad_entry_row(entry: BadEntry, tiles_root: Path, seasons: tuple[str, ...] = SEASONS) -> dict[str, Any]:
    """A folder that cannot be a tile: its names are reported, its files never read."""
    rel = Path(entry.path).relative_to(tiles_root).parts
    city_id, tile_id = (rel[0], rel[1]) if len(rel) > 1 else (rel[0], "")
    row = empty_row(city_id, tile_id, seasons)
    if is_valid_id(city_id) and is_valid_id(tile_id):  # bad names are the id checks' finding
        row["folder_problem"] = entry.reason
    return row
