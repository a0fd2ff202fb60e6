"""Figure 2, inference memory: peak resident memory of batch inference on an 8192 x 8192 tile
divided by that on a 2048 x 2048 tile. Target: at most 1.3 (memory must not grow with the tile).

Each size runs in its own fresh child process (the production per-tile unit, `TilePredictor`, with
the default model and inference params); the parent reads the child's peak RSS from
`os.wait4` (ru_maxrss). The 8192 tile is a 4 x 4 mosaic of the generated 2048 tile's arrays
(window writes, far quicker than rendering 8192^2 pixels); it is deleted after the run (3.8 GB).
BENCH_QUICK=1 uses a 4096 mosaic instead.

The ratio of peaks flatters: about 0.9 GB of both is Python, torch and the model before any pixel.
So the growth ratio is reported beside it: peak RSS above the child's idle baseline (its peak before
the prediction starts, everything imported and the model built), big tile over small.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common as c


def child(root: Path, out_dir: Path) -> None:
    """Predict the one tile under `root` in this process; print RSS facts as JSON."""
    c.threads()
    import resource

    from landcover.inference.stage import TilePredictor

    bundle, p = c.default_bundle()
    tile = c.tiles_of(root)[0]
    worker = TilePredictor(bundle, c.model_ref(), p, out_dir, "cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    outcome = worker(tile)
    seconds = time.perf_counter() - t0
    assert outcome.status == "written", outcome
    print(json.dumps({"rss_before_predict_mb": round(before, 1), "seconds": round(seconds, 2),
                      "km2": round(outcome.figures["km2"], 2)}))


def measure(root: Path, size: int) -> dict:
    out_dir = c.RESULTS / "work" / f"memory_{size}"
    shutil.rmtree(out_dir, ignore_errors=True)
    c.log(f"figure 2: predicting the {size} x {size} tile in a child process")
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(root), str(out_dir)],
                            stdout=subprocess.PIPE, text=True, cwd=c.REPO)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be a max over all children)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read()
    proc.stdout.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"memory child for {size} px failed with exit code {proc.returncode}")
    facts = json.loads(out.strip().splitlines()[-1])
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), **facts}


def main() -> dict:
    n_threads = c.threads()
    small_root = c.tile_2048()
    factor = 2 if c.quick() else 4
    big_size = 2048 * factor
    big_name = f"tile{big_size}"
    big_root = c.mosaic_tile(small_root, big_name, factor)
    try:
        small = measure(small_root, 2048)
        big = measure(big_root, big_size)
    finally:
        if not os.environ.get("BENCH_KEEP_DATA"):
            shutil.rmtree(c.DATA / big_name, ignore_errors=True)
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    growth_small = small["peak_rss_mb"] - small["rss_before_predict_mb"]
    growth_big = big["peak_rss_mb"] - big["rss_before_predict_mb"]
    return c.emit("inference_memory", {
        "ratio": c.rnd(ratio, 3),
        "target": "<= 1.3",
        "met": ratio <= 1.3,
        "growth_ratio": c.rnd(growth_big / growth_small, 3),
        "growth_ratio_meaning": "peak RSS above the idle baseline (before predicting), big / small tile",
        "size_small": 2048,
        "size_big": big_size,
        "pixels_ratio": factor**2,
        "peak_rss_mb_small": small["peak_rss_mb"],
        "peak_rss_mb_big": big["peak_rss_mb"],
        "rss_before_predict_mb_small": small["rss_before_predict_mb"],
        "rss_before_predict_mb_big": big["rss_before_predict_mb"],
        "growth_during_predict_mb_small": round(growth_small, 1),
        "growth_during_predict_mb_big": round(growth_big, 1),
        "predict_s_small": small["seconds"],
        "predict_s_big": big["seconds"],
        "torch_threads": n_threads,
    })


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
