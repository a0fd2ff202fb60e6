"""Figure 7, mosaic: composite time against a bare decode of the same scenes, one core each; the same
scenes read over HTTP from a server that behaves like a cloud bucket; memory against the scene count.

Fabricated L2A scenes (`landcover.synth.l2a`, deflate COGs in a static STAC catalog, the Earth
Search Collection 1 style) cover one tile with a margin, `SCENES` per season (and `MANY` per season
for the second arm). The mosaic arm is the whole per-tile stage (`TileMosaicker`: search, offsets,
reads, the 20 m mask and upsampling, the quantile, plausibility counts, writing four seasons and
the count layer) with `mosaic.workers: 1`; the decode arm reads every band file of the same scenes
with rasterio (`read()`, one thread). Both arms run pinned to one CPU (sched_setaffinity), arms
interleaved, median of the per-round ratios. Beside them:

- two threads on two CPUs (`mosaic.workers: 2`);
- the HTTP arm: the same catalogue served by `_http.Bucket` in a process of its own (20 ms per
  request, 100 MB/s shared), on one CPU: requests and bytes per tile, and its time against the disk
  arm's;
- memory: peak RSS of a fresh process mosaicking the tile with `MANY` scenes per season against
  `SCENES` (`os.wait4`), and the same above the process's idle baseline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import _common as c

SCENES = 5  # per season: figure 7
MANY = 30  # per season: how it grows with the scene count
LATENCY_S, BANDWIDTH = 0.020, 100e6


def catalog(size: int, per_season: int):
    from landcover.geo import TileGrid
    from landcover.synth.l2a import scenes_over, write_catalog

    tile = TileGrid("bench", "r00c00", 32632, 500000.0, 5000000.0, size, size)
    root = c.DATA / f"l2a{size}-{per_season}"
    if not (root / "catalog.json").is_file():
        c.log(f"fabricating {4 * per_season} L2A scenes over a {size} px tile")
        shutil.rmtree(root, ignore_errors=True)
        write_catalog(scenes_over(tile.bounds, tile.epsg, 2023, per_season, seed=3, margin_m=160), root)
    return tile, root / "catalog.json"


@contextlib.contextmanager
def cpus(n: int):
    """The calling thread (and the threads it starts) on `n` CPUs."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(sorted(before)[:n]))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def mosaic_arm(tile, source_of, out: Path, workers: int, n_cpus: int):
    from landcover.config import load_params
    from landcover.mosaic.stage import TileMosaicker

    p = load_params(c.REPO / "params.yaml", {"mosaic.workers": workers})

    def run() -> None:
        shutil.rmtree(out, ignore_errors=True)
        with cpus(n_cpus):
            assert TileMosaicker(p, source_of(p), out, 2023)(tile).status == "written"

    return run


def decode_arm(files: list[str]):
    import rasterio

    def run() -> None:
        with cpus(1):
            for href in files:
                with rasterio.open(href) as ds:
                    ds.read()

    return run


def _files(cat: Path) -> list[str]:
    from landcover.config import load_params
    from landcover.mosaic.opening import open_source

    source = open_source(str(cat), load_params(c.REPO / "params.yaml").mosaic)
    return [a.href for item in source.items for a in item.assets.values()]


def http_source(cat: Path, bucket_url: str):
    """The catalogue's items with every asset read from the bucket instead of the disk, under a new
    URL each run (GDAL caches what it downloaded per URL: a second run would read nothing)."""
    runs = iter(range(1_000_000))

    def source_of(p):
        from landcover.mosaic.opening import open_source

        source = open_source(str(cat), p.mosaic)
        root, prefix = str(cat.parent.resolve()), f"{bucket_url}/run{next(runs)}"
        for item in source.items:
            for asset in item.assets.values():
                asset.href = asset.href.replace(root, prefix)
        source.description = {**source.description, "kind": "stac-static over http"}
        return source

    return source_of


def peak_rss(cat: Path, size: int) -> dict:
    """Peak RSS (MB) of a fresh process mosaicking the tile, and its idle baseline after imports: the
    child's own high-water mark (VmHWM; the kernel's ru_maxrss would carry this big parent's over)."""
    done = subprocess.run([sys.executable, __file__, "--child", str(cat), str(size)], capture_output=True,
                          text=True, cwd=c.REPO, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _high_water_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(cat: Path, size: int) -> None:
    from landcover.config import load_params
    from landcover.geo import TileGrid
    from landcover.mosaic.opening import open_source
    from landcover.mosaic.stage import TileMosaicker

    baseline = _high_water_mb()
    tile = TileGrid("bench", "r00c00", 32632, 500000.0, 5000000.0, size, size)
    p = load_params(c.REPO / "params.yaml")
    out = c.RESULTS / "work" / f"mosaic-rss-{os.getpid()}"
    try:
        assert TileMosaicker(p, open_source(str(cat), p.mosaic), out, 2023)(tile).status == "written"
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"baseline_mb": baseline, "peak_mb": _high_water_mb()}))


def main() -> dict:
    from _http import serve_in_process

    from landcover.mosaic.opening import open_source

    size = 256 if c.quick() else 1024
    repeats = 2 if c.quick() else 3
    tile, cat = catalog(size, SCENES)
    _, cat_many = catalog(size, MANY)
    out = c.RESULTS / "work" / "mosaic"
    files, files_many = _files(cat), _files(cat_many)
    from_disk = lambda p: open_source(str(cat), p.mosaic)  # noqa: E731
    bucket = serve_in_process(cat.parent, LATENCY_S, BANDWIDTH)
    try:
        arms = {"decode": decode_arm(files), "mosaic_1_core": mosaic_arm(tile, from_disk, out, 1, 1),
                "mosaic_2_threads": mosaic_arm(tile, from_disk, out, 2, 2),
                "mosaic_http_1_core": mosaic_arm(tile, http_source(cat, bucket.url), out, 1, 1)}
        for arm in arms.values():
            arm()  # warm: page cache and imports for every arm
        c.log(f"figure 7: mosaic of one {size} px tile ({4 * SCENES} scenes) vs a bare decode of their "
              f"{len(files)} files; over HTTP ({LATENCY_S * 1000:g} ms, {BANDWIDTH / 1e6:g} MB/s)")
        times = c.interleave(arms, repeats)
        bucket.reset()
        arms["mosaic_http_1_core"]()
        stats = bucket.stats()
        requests, sent = stats["requests"], stats["bytes_sent"]
    finally:
        bucket.close()
    many = {"decode_many": decode_arm(files_many),
            "mosaic_many_1_core": mosaic_arm(tile, lambda p: open_source(str(cat_many), p.mosaic), out, 1, 1)}
    many["mosaic_many_1_core"]()
    c.log(f"the same with {4 * MANY} scenes")
    times_many = c.interleave(many, repeats)
    rss, rss_many = peak_rss(cat, size), peak_rss(cat_many, size)
    shutil.rmtree(out, ignore_errors=True)

    ratio = c.paired_ratio(times, "mosaic_1_core", "decode")
    http_ratio = c.paired_ratio(times, "mosaic_http_1_core", "mosaic_1_core")
    scene_bytes = sum(Path(f).stat().st_size for f in files)
    mpx = 4 * size * size / 1e6  # four season composites
    decoded_mpx = sum(_pixels(h) for h in files) / 1e6
    growth = (rss_many["peak_mb"] - rss_many["baseline_mb"]) / max(rss["peak_mb"] - rss["baseline_mb"], 1.0)
    return c.emit("mosaic", {
        "ratio": c.rnd(ratio, 3),
        "target": "<= 4 (mosaic s / decode s, one core each); HTTP <= 2x disk; RSS 30 vs 5 scenes <= 2",
        "met": bool(ratio <= 4 and http_ratio <= 2 and rss_many["peak_mb"] / rss["peak_mb"] <= 2),
        "ratio_many": c.rnd(c.paired_ratio(times_many, "mosaic_many_1_core", "decode_many"), 3),
        "http_to_disk": c.rnd(http_ratio, 3),
        "http_requests_per_tile": requests, "http_mb_per_tile": c.rnd(sent / 1e6, 2),
        "scene_mb": c.rnd(scene_bytes / 1e6, 2), "http_bytes_to_scene_bytes": c.rnd(sent / scene_bytes, 3),
        "rss_ratio_many": c.rnd(rss_many["peak_mb"] / rss["peak_mb"], 3), "rss_growth_ratio_many": c.rnd(growth, 3),
        "peak_rss_mb": c.rnd(rss["peak_mb"], 1), "peak_rss_mb_many": c.rnd(rss_many["peak_mb"], 1),
        "baseline_rss_mb": c.rnd(rss["baseline_mb"], 1),
        "mosaic_out_mpx_per_s_per_core": c.rnd(mpx / c.median(times["mosaic_1_core"]), 3),
        "mosaic_out_mpx_per_s_2_threads": c.rnd(mpx / c.median(times["mosaic_2_threads"]), 3),
        "decode_in_mpx_per_s_per_core": c.rnd(decoded_mpx / c.median(times["decode"]), 2),
        "decode_s": c.rnd(c.median(times["decode"]), 3),
        "mosaic_1_core_s": c.rnd(c.median(times["mosaic_1_core"]), 3),
        "mosaic_2_threads_s": c.rnd(c.median(times["mosaic_2_threads"]), 3),
        "mosaic_http_1_core_s": c.rnd(c.median(times["mosaic_http_1_core"]), 3),
        "tile_px": size, "scenes": 4 * SCENES, "scenes_many": 4 * MANY, "files": len(files),
        "decoded_mpx": c.rnd(decoded_mpx, 2),
        "runs_s": {k: [c.rnd(x, 3) for x in v] for k, v in {**times, **times_many}.items()},
    })


def _pixels(href: str) -> int:
    import rasterio

    with rasterio.open(href) as ds:
        return ds.width * ds.height


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
    sys.exit(0)
