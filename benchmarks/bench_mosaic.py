"""Figure 7, mosaic: composite throughput in output megapixels per second per core, beside a bare
decode of the same scenes. The ratio (mosaic time / decode time) is the figure.

Fabricated L2A scenes (`landcover.synth.l2a`, deflate COGs in a static STAC catalog, the Earth
Search Collection 1 style) cover one tile with a margin, `SCENES` per season. The mosaic arm is
the whole per-tile stage (`TileMosaicker`: search, offsets, odc-stac load and reprojection of the
20 m bands, SCL mask, day fusing, median, plausibility counts, writing four seasons and the count
layer) on one Dask thread; the decode arm reads every band file of the same scenes with rasterio
(`read()`, one thread). Both single-core, arms interleaved, median of the per-round ratios. The
two-thread mosaic throughput is reported beside it.
"""

from __future__ import annotations

import shutil
import sys

import _common as c

SCENES = 5  # per season


def catalog(size: int):
    from landcover.geo import TileGrid
    from landcover.synth.l2a import scenes_over, write_catalog

    tile = TileGrid("bench", "r00c00", 32632, 500000.0, 5000000.0, size, size)
    root = c.DATA / f"l2a{size}"
    if not (root / "catalog.json").is_file():
        c.log(f"fabricating {4 * SCENES} L2A scenes over a {size} px tile")
        shutil.rmtree(root, ignore_errors=True)
        write_catalog(scenes_over(tile.bounds, tile.epsg, 2023, SCENES, seed=3, margin_m=160), root)
    return tile, root / "catalog.json"


def main() -> dict:
    import rasterio

    from landcover.config import load_params
    from landcover.mosaic.opening import open_source
    from landcover.mosaic.stage import TileMosaicker, dask_scheduler

    size = 256 if c.quick() else 1024
    tile, cat = catalog(size)
    out = c.RESULTS / "work" / "mosaic"

    def arm(workers: int):
        p = load_params(c.REPO / "params.yaml", {"mosaic.workers": workers})
        worker = TileMosaicker(p, open_source(str(cat), p.mosaic), out, 2023)

        def run() -> None:
            shutil.rmtree(out, ignore_errors=True)
            with dask_scheduler(p.mosaic):
                assert worker(tile).status == "written"

        return run

    source = open_source(str(cat), load_params(c.REPO / "params.yaml").mosaic)
    files = [a.href for item in source.items for a in item.assets.values()]

    def decode() -> None:
        for href in files:
            with rasterio.open(href) as ds:
                ds.read()

    mosaic_1, mosaic_2 = arm(1), arm(2)
    decode()
    mosaic_1()  # warm: page cache and imports for both arms
    c.log(f"figure 7: mosaic of one {size} px tile ({4 * SCENES} scenes) vs a bare decode of their {len(files)} files")
    times = c.interleave({"decode": decode, "mosaic_1_thread": mosaic_1, "mosaic_2_threads": mosaic_2},
                         2 if c.quick() else 3)
    ratio = c.paired_ratio(times, "mosaic_1_thread", "decode")
    mpx = 4 * size * size / 1e6  # four season composites
    decoded_mpx = sum(_pixels(h) for h in files) / 1e6
    shutil.rmtree(out, ignore_errors=True)
    return c.emit("mosaic", {
        "ratio": c.rnd(ratio, 3),
        "target": "report (mosaic s / decode s, one core each)",
        "met": None,
        "mosaic_out_mpx_per_s_per_core": c.rnd(mpx / c.median(times["mosaic_1_thread"]), 3),
        "mosaic_out_mpx_per_s_2_threads": c.rnd(mpx / c.median(times["mosaic_2_threads"]), 3),
        "decode_in_mpx_per_s_per_core": c.rnd(decoded_mpx / c.median(times["decode"]), 2),
        "decode_s": c.rnd(c.median(times["decode"]), 3),
        "mosaic_1_thread_s": c.rnd(c.median(times["mosaic_1_thread"]), 3),
        "mosaic_2_threads_s": c.rnd(c.median(times["mosaic_2_threads"]), 3),
        "tile_px": size, "scenes": 4 * SCENES, "files": len(files), "decoded_mpx": c.rnd(decoded_mpx, 2),
        "runs_s": {k: [c.rnd(x, 3) for x in v] for k, v in times.items()},
    })


def _pixels(href: str) -> int:
    import rasterio

    with rasterio.open(href) as ds:
        return ds.width * ds.height


if __name__ == "__main__":
    main()
    sys.exit(0)
