"""Figure 4, validation: validation time per tile (`inspect_tile`: the per-tile unit that every
runner maps, reading the four season files and the label block by block into the raster facts the
Great Expectations suite checks) divided by the time to read and decode the same files fully once
(rasterio `read()` of each file). Target: at most 1.3.

The arms alternate on the generated 2048 x 2048 tile; the figure is the median of the per-round
ratios. The fixed cost of a whole `run_validation` (Great Expectations checkpoint and Data Docs,
once per run, not per tile) is reported beside it, measured on the same tile.
"""

from __future__ import annotations

import shutil
import sys

import _common as c


def main() -> dict:
    import rasterio

    from landcover.config import load_params
    from landcover.dataset import read_cities
    from landcover.validation.stage import inspect_tile, run_validation

    root = c.tile_2048()
    tile = c.tiles_of(root)[0]
    params = load_params(c.REPO / "params.yaml")
    cities = read_cities(root / "cities.csv")

    def read_all() -> None:
        for path in tile.files():
            with rasterio.open(path) as ds:
                ds.read()

    def validate() -> None:
        row = inspect_tile(tile, cities, params)
        assert not any(v for k, v in row.items() if k.endswith("read_error")), row

    read_all()  # page cache warm for both arms
    c.log("figure 4: inspect_tile vs a full read of the same five files (2048 px tile)")
    times = c.interleave({"read_decode": read_all, "inspect_tile": validate}, 2 if c.quick() else 4)
    t_read, t_val = c.median(times["read_decode"]), c.median(times["inspect_tile"])
    ratio = c.paired_ratio(times, "inspect_tile", "read_decode")

    out_dir = c.RESULTS / "work" / "validation"
    whole = c.timed(lambda: run_validation(params, root, out_dir))
    shutil.rmtree(out_dir, ignore_errors=True)
    return c.emit("validation", {
        "ratio": c.rnd(ratio, 3),
        "target": "<= 1.3",
        "met": ratio <= 1.3,
        "validate_s_per_tile": c.rnd(t_val, 3),
        "read_decode_s_per_tile": c.rnd(t_read, 3),
        "tile_px": 2048,
        "files": len(tile.files()),
        "run_validation_one_tile_s": c.rnd(whole, 2),
        "run_validation_fixed_s": c.rnd(whole - t_val, 2),
        "runs_s": {k: [c.rnd(x, 3) for x in v] for k, v in times.items()},
    })


if __name__ == "__main__":
    main()
    sys.exit(0)
