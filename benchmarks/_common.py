"""Shared helpers of the benchmark scripts: machine facts, JSON lines, generated data, a model.

Every figure is a ratio of two measurements taken side by side in one process run (arms
interleaved, medians of repeats), because absolute times drift on shared 2-core machines. Each
script prints one JSON line and writes it to `benchmarks/results/<figure>.json` (git-ignored).
Benchmark data is generated with the project's own synthetic generator under
`benchmarks/results/data/` and reused by later runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = RESULTS / "data"
SEASON_NAMES = ("spring", "summer", "autumn", "winter")

# BENCH_SRC=<dir> measures another source tree (e.g. an older commit's `src`, for before/after)
SRC = Path(os.environ.get("BENCH_SRC") or REPO / "src").resolve()
if str(SRC) not in sys.path:  # first, ahead of the editable install
    sys.path.insert(0, str(SRC))

import landcover  # noqa: E402,F401 - first: sets the package's OpenMP default before torch loads


def quick() -> bool:
    """BENCH_QUICK=1: fewer repeats and smaller inputs (a smoke run of the scripts, not figures)."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def threads() -> int:
    """Torch intra-op threads for every arm: BENCH_THREADS, else torch's default (all cores)."""
    import torch

    n = int(os.environ.get("BENCH_THREADS", "0") or 0)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def machine_facts() -> dict:
    facts = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
        facts["mem_total_gb"] = round(int(mem[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        facts["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        import rasterio

        facts["rasterio"] = rasterio.__version__
        facts["gdal"] = rasterio.__gdal_version__
    except ImportError:
        pass
    try:
        facts["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        facts["src_dirty"] = bool(dirty)
        if os.environ.get("BENCH_SRC"):
            facts["bench_src"] = str(SRC)
    except (OSError, subprocess.SubprocessError):
        pass
    return facts


def emit(figure: str, result: dict) -> dict:
    """Print the figure's JSON line and write it under benchmarks/results/."""
    line = {"figure": figure, **result, "machine": machine_facts(),
            "at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(line, sort_keys=False, default=str)
    (RESULTS / f"{figure}.json").write_text(text + "\n")
    print(text, flush=True)
    return line


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleave(arms: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Run the arms alternately (A B A B ...), so load drifts hit both alike; seconds per run."""
    times: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(repeats):
        order = list(arms) if r % 2 == 0 else list(reversed(arms))
        for name in order:
            times[name].append(timed(arms[name]))
            log(f"  {name}: {times[name][-1]:.2f} s")
    return times


def paired_ratio(times: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of num/den: each round ran both arms back to back, so a load change
    between rounds cancels out (better than the ratio of medians on a drifting machine)."""
    return statistics.median(a / b for a, b in zip(times[num], times[den], strict=True))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def rnd(x: float, n: int = 4) -> float:
    return round(float(x), n)


def peak_rss_mb_self() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- data


def synth_dataset(name: str, size: int, cities: int = 1, tiles_per_city: int = 1, seed: int = 5) -> Path:
    """A generated dataset root under benchmarks/results/data/ (made once, then reused)."""
    from landcover.synth.generate import SynthOptions, generate

    root = DATA / name
    if not (root / "README.md").is_file():  # the generator writes README.md last
        log(f"generating {name}: {cities} x {tiles_per_city} tiles of {size} px")
        generate(root, SynthOptions(cities=cities, tiles_per_city=tiles_per_city, size=size, seed=seed))
    return root


def packed_store(root: Path, work: Path):
    """`root`'s tiles packed by the pack stage's function into `work/store.zarr`, every tile a
    training tile and the first also the validation tile; returns the stage's PackResult."""
    from landcover.config import load_params
    from landcover.pack.stage import run_pack

    tiles = tiles_of(root)
    work.mkdir(parents=True, exist_ok=True)
    rows = [f"{x.city_id},{x.tile_id},train" for x in tiles] + [f"{tiles[0].city_id},{tiles[0].tile_id},val"]
    (work / "split.csv").write_text("city_id,tile_id,split\n" + "\n".join(rows) + "\n")
    return run_pack(load_params(REPO / "params.yaml"), root, work / "split.csv", work / "store.zarr",
                    work / "store.json")


def tiles_of(root: Path):
    from landcover.dataset import discover_tiles

    return discover_tiles(root)[0]


def tile_2048() -> Path:
    """The one 2048 x 2048 four-season tile the inference and validation figures share."""
    root = synth_dataset("tile2048", 2048)
    return root


def mosaic_tile(src_root: Path, name: str, factor: int) -> Path:
    """A (factor * size)^2 tile made by tiling the arrays of a generated tile with window writes
    (much faster than rendering that size): same bands, nodata, CRS, block size and compression."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    src_tile = tiles_of(src_root)[0]
    root = DATA / name
    tile_dir = root / "tiles" / src_tile.city_id / src_tile.tile_id
    done = root / "MOSAIC_DONE"
    if done.is_file():
        return root
    tile_dir.mkdir(parents=True, exist_ok=True)
    for f in [*SEASON_NAMES, "label"]:
        src_path = src_tile.directory / f"{f}.tif"
        with rasterio.open(src_path) as src:
            data = src.read()
            profile = src.profile
            h, w = src.height, src.width
            profile.update(height=h * factor, width=w * factor, zlevel=1)
            descriptions, tags = src.descriptions, src.tags()
            cmap = src.colormap(1) if f == "label" else None
        log(f"mosaic {name}/{f}.tif ({factor}x{factor} copies)")
        with rasterio.open(tile_dir / f"{f}.tif", "w", **profile) as dst:
            for i in range(factor):
                for j in range(factor):
                    # mirror alternate copies so the mosaic has no hard seams
                    block = data[:, ::-1] if i % 2 else data
                    block = block[:, :, ::-1] if j % 2 else block
                    dst.write(np.ascontiguousarray(block), window=Window(j * w, i * h, w, h))
            dst.descriptions = descriptions
            dst.update_tags(**tags)
            if cmap:
                dst.write_colormap(1, cmap)
    (root / "cities.csv").write_text((src_root / "cities.csv").read_text())
    done.write_text("ok\n")
    return root


# ----------------------------------------------------------------------------- model


def default_bundle(arch: str | None = None):
    """A model bundle with the default architecture of params.yaml (or `arch`) and random weights
    (speed does not depend on the weights), plausible normalisation statistics."""
    import numpy as np
    import torch

    from landcover.config import load_params
    from landcover.model.bundle import BundleMeta, ModelBundle
    from landcover.model.network import build_network
    from landcover.model.normalization import NormStats

    p = load_params(REPO / "params.yaml")
    t = p.train
    torch.manual_seed(0)
    arch = arch or t.arch
    net = build_network(arch, t.encoder, t.encoder_depth).eval()
    norm = NormStats(np.full(40, 0.15, np.float32), np.full(40, 0.08, np.float32))
    crosswalk = {int(k): int(v) for k, v in p.fuel.crosswalk.items()}
    meta = BundleMeta(arch, t.encoder, t.encoder_depth, norm.to_dict(), crosswalk, p.fuel.crosswalk_version)
    return ModelBundle(net, meta), p


def model_ref():
    from landcover.model.loading import ModelRef

    return ModelRef("bench:random-weights", "bench:random-weights", "bench", "0", "")


def run_script(script: Path, extra_env: dict | None = None, timeout: float | None = None) -> int:
    env = {**os.environ, **(extra_env or {})}
    return subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, timeout=timeout).returncode
