"""Synthetic generation memory: peak resident memory of `landcover.synth` writing one 8192 x 8192
tile divided by that of one 2048 x 2048 tile. Target: at most 1.3 (the generator renders blocks,
so memory must not grow with the tile).

Each size runs in its own fresh child process; the parent reads the child's peak RSS from
`os.wait4` (ru_maxrss). The tiles are written to a scratch folder and deleted afterwards.
BENCH_QUICK=1 compares 1024 px with 4096 px instead.

The growth ratio is reported beside the ratio of peaks: peak RSS above the child's idle baseline
(its peak with the generator imported, before any tile), big tile over small.
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


def child(out: Path, size: int) -> None:
    from landcover.synth.generate import SynthOptions, generate

    before = c.peak_rss_mb_self()  # the idle baseline: everything imported, nothing generated
    t0 = time.perf_counter()
    generate(out, SynthOptions(cities=1, tiles_per_city=1, size=size, seed=5))
    print(json.dumps({"rss_before_generate_mb": round(before, 1), "seconds": round(time.perf_counter() - t0, 1)}))


def measure(size: int) -> dict:
    out = c.RESULTS / "work" / f"synth_memory_{size}"
    shutil.rmtree(out, ignore_errors=True)
    c.log(f"synth memory: one {size} x {size} tile in a child process")
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(out), str(size)],
                            stdout=subprocess.PIPE, text=True, cwd=c.REPO)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    code = os.waitstatus_to_exitcode(status)
    text = proc.stdout.read()
    proc.stdout.close()
    shutil.rmtree(out, ignore_errors=True)
    if code != 0:
        raise SystemExit(f"synth memory child for {size} px failed with exit code {code}")
    facts = json.loads(text.strip().splitlines()[-1])
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), **facts}


def main() -> dict:
    small_size, big_size = (1024, 4096) if c.quick() else (2048, 8192)
    small, big = measure(small_size), measure(big_size)
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    growth_small = small["peak_rss_mb"] - small["rss_before_generate_mb"]
    growth_big = big["peak_rss_mb"] - big["rss_before_generate_mb"]
    return c.emit("synth_memory", {
        "ratio": c.rnd(ratio, 3),
        "target": "<= 1.3",
        "met": ratio <= 1.3,
        "growth_ratio": c.rnd(growth_big / growth_small, 3),
        "growth_ratio_meaning": "peak RSS above the idle baseline (before generating), big / small tile",
        "size_small": small_size,
        "size_big": big_size,
        "pixels_ratio": (big_size // small_size) ** 2,
        "peak_rss_mb_small": small["peak_rss_mb"],
        "peak_rss_mb_big": big["peak_rss_mb"],
        "rss_before_generate_mb_small": small["rss_before_generate_mb"],
        "rss_before_generate_mb_big": big["rss_before_generate_mb"],
        "growth_mb_small": round(growth_small, 1),
        "growth_mb_big": round(growth_big, 1),
        "generate_s_small": small["seconds"],
        "generate_s_big": big["seconds"],
        "mpx_per_s_big": c.rnd(big_size**2 / 1e6 / big["seconds"], 3),
    })


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
