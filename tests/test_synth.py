"""The synthetic dataset follows the data contract and carries a learnable, non-trivial signal."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landcover.bands import BANDS, SEASONS
from landcover.cli import main as cli_main
from landcover.dataset import discover_tiles, read_cities, read_label, read_stack
from landcover.synth.generate import SynthOptions, generate
from landcover.synth.manifest import write_manifest


def test_contract(tiny_dataset: Path) -> None:
    cities = read_cities(tiny_dataset / "cities.csv")
    assert len({c.climate_zone for c in cities.values()}) == 6  # one city per zone
    tiles, bad = discover_tiles(tiny_dataset)
    assert not bad and len(tiles) == 12
    for tile in tiles:
        assert tile.city_id in cities
        grids = set()
        for season in SEASONS:
            with rasterio.open(tile.season_path(season)) as src:
                assert src.count == 10 and src.dtypes == ("uint16",) * 10
                assert src.descriptions == BANDS
                assert src.nodata == 0
                assert src.crs.is_projected and src.crs.to_epsg() // 100 in (326, 327)
                assert src.res == (10.0, 10.0)
                grids.add((src.crs.to_epsg(), tuple(src.transform), src.shape))
        with rasterio.open(tile.label_path) as src:
            assert src.count == 1 and src.dtypes == ("uint8",)
            grids.add((src.crs.to_epsg(), tuple(src.transform), src.shape))
            label = src.read(1)
        assert len(grids) == 1, f"{tile.key}: files not on one grid"
        assert label.max() <= 10


def test_reflectance_ranges(tiny_dataset: Path) -> None:
    tiles, _ = discover_tiles(tiny_dataset)
    stack = read_stack(tiles[0]).astype(np.float32)
    valid = stack[stack > 0]
    assert 100 < np.median(valid) < 4000  # surface reflectance x 10000
    assert valid.max() <= 15000 and valid.min() >= 1  # fresh snow may exceed 1.0 in L2A


def test_deterministic_pixels(tmp_path: Path) -> None:
    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for tile in discover_tiles(root)[0]:
            h.update(read_stack(tile).tobytes())
            h.update(read_label(tile).tobytes())
        return h.hexdigest()

    opts = SynthOptions(cities=2, tiles_per_city=2, size=48, seed=11)
    generate(tmp_path / "a", opts)
    generate(tmp_path / "b", opts)
    generate(tmp_path / "c", SynthOptions(cities=2, tiles_per_city=2, size=48, seed=12))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def _pixels(root: Path, every: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, groups = [], [], []
    for i, tile in enumerate(discover_tiles(root)[0]):
        stack = read_stack(tile).reshape(40, -1).T.astype(np.float32)
        label = read_label(tile).ravel()
        keep = np.flatnonzero((label > 0) & (stack.min(axis=1) > 0))[::every]
        xs.append(stack[keep])
        ys.append(label[keep])
        groups.append(np.full(len(keep), i))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    generate(root, SynthOptions(cities=12, tiles_per_city=2, size=128, seed=42))
    return root


def test_every_class_present(demo_like: Path) -> None:
    counts = np.zeros(11, dtype=np.int64)
    for tile in discover_tiles(demo_like)[0]:
        counts += np.bincount(read_label(tile).ravel(), minlength=11)
    shares = counts / counts.sum()
    assert (counts[1:] > 0).all(), f"missing classes: {np.flatnonzero(counts[1:] == 0) + 1}"
    assert shares[1:].min() > 0.002  # even the rare classes are more than a few pixels
    assert 0.005 < shares[0] < 0.1  # some unlabelled pixels, as in the reference maps


# Measured (12 cities x 2 tiles; held-out tiles): 0.77 with 4 seasons vs 0.68 with summer alone
# (seed 42, 128 px, this test), 0.81 vs 0.78 (seed 7), 0.74 vs 0.69 (seed 42, 256 px). The bounds
# fail a generator without seasonal signal (margin) or one a per-pixel rule solves (ceiling).
SEASON_MARGIN = 0.04
CEILING = 0.85
FLOOR = 0.6


def test_seasons_carry_signal_but_task_is_not_trivial(demo_like: Path) -> None:
    x, y, g = _pixels(demo_like)
    train, test = g % 2 == 0, g % 2 == 1  # held-out tiles
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    z = (x - mu) / sd

    def nearest_centroid(cols: slice) -> float:
        cents = np.stack([z[train & (y == k)][:, cols].mean(0) for k in range(1, 11)])
        d = ((z[test][:, cols][:, None, :] - cents[None]) ** 2).sum(-1)
        return float(((d.argmin(1) + 1) == y[test]).mean())

    acc_all = nearest_centroid(slice(0, 40))
    acc_summer = nearest_centroid(slice(10, 20))
    assert acc_all >= acc_summer + SEASON_MARGIN, (acc_all, acc_summer)
    assert FLOOR < acc_all < CEILING, acc_all


def test_manifest_full_shape(tmp_path: Path) -> None:
    n_c, n_t = write_manifest(tmp_path, 749, 5401, seed=42)
    assert (n_c, n_t) == (749, 5401)
    rows = (tmp_path / "tiles.csv").read_text().splitlines()[1:]
    assert len(rows) == 5401
    per_city = np.bincount(np.unique([r.split(",")[0] for r in rows], return_inverse=True)[1])
    assert per_city.min() >= 1 and per_city.max() >= 25  # a few metropolitan areas
    assert np.median(per_city) < per_city.mean()  # heavy-tailed spread
    assert len(read_cities(tmp_path / "cities.csv")) == 749


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cities", "-3"], "--cities must be at least 1"),
        (["--size", "0"], "--size must be at least 32"),
        (["--tiles-per-city", "0"], "--tiles-per-city must be at least 1"),
        (["--zones", "tundra"], "unknown climate zone 'tundra'"),
    ],
)
def test_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert cli_main(["synth", "--out", str(out), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.rglob("*.tif"))


def test_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli_main(["synth", "--out", str(blocker / "data"), "--cities", "1"]) == 1
    assert "not writable" in capsys.readouterr().err


def test_interrupted_generation_leaves_no_half_tile(tmp_path: Path) -> None:
    """Kill the generator mid-run: only complete tiles exist, and a rerun completes the set."""
    out = tmp_path / "data"
    code = (
        "import os, landcover.synth.generate as g\n"
        "orig = g.write_tile\n"
        "n = [0]\n"
        "def killer(spec, d):\n"
        "    n[0] += 1\n"
        "    if n[0] == 3:\n"
        "        g.render_block = lambda p, w: os._exit(9)\n"
        "    return orig(spec, d)\n"
        "g.write_tile = killer\n"
        f"g.generate(__import__('pathlib').Path({str(out)!r}), g.SynthOptions(cities=2, tiles_per_city=2, size=32))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == 9
    tiles, _ = discover_tiles(out)
    assert len(tiles) == 2 and all(len(list(t.directory.iterdir())) == 5 for t in tiles)
    generate(out, SynthOptions(cities=2, tiles_per_city=2, size=32))
    tiles, _ = discover_tiles(out)
    assert len(tiles) == 4
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]


def test_blocks_render_the_same_pixels_as_the_whole_tile() -> None:
    """A tile rendered in blocks (with halos) equals the tile rendered at once, in every zone: the
    pixels do not depend on the block size, which is what keeps memory flat."""
    from landcover.synth.generate import TileSpec, blocks, pick_cities, plan_tile, render_block
    from landcover.synth.noise import Window

    size = 200
    for index, city in enumerate(pick_cities(6)):
        plan = plan_tile(TileSpec(city, index, 0, size, 42, 0.03))
        whole = render_block(plan, Window(0, size, 0, size))
        for window in blocks(size, 72):  # uneven blocks: 72, 72, 56
            part = render_block(plan, window)
            for name, array in part.items():
                assert np.array_equal(array, whole[name][..., window.r0:window.r1, window.c0:window.c1]), (
                    city.climate_zone, name, window)


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


# Run in a fresh interpreter under the environment the test sets: generate, then report what actually
# ran (OpenBLAS's kernel as threadpoolctl sees it, numpy's enabled SIMD dispatch targets) and digests
# of two controls whose bytes do depend on the kernel (a float64 matmul) and on numpy's SIMD loops
# (float32 exp): they show each switch took effect on this machine, so equal data digests mean something.
_GENERATE_AND_REPORT = """
import hashlib, json, sys
from pathlib import Path
import numpy as np
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
from threadpoolctl import threadpool_info
from landcover.synth.generate import SynthOptions, generate
generate(Path(sys.argv[1]), SynthOptions(cities=12, tiles_per_city=1, size=256, seed=42))
rng = np.random.default_rng(0)
a, b, x = rng.random((512, 9)), rng.random((9, 10)), rng.uniform(-20, 20, 100_000).astype(np.float32)
print(json.dumps({
    "blas": sorted({i.get("architecture") for i in threadpool_info() if i["internal_api"] == "openblas"}),
    "simd": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)],
    "matmul": hashlib.sha256((a @ b).tobytes()).hexdigest(),
    "exp": hashlib.sha256(np.exp(x).tobytes()).hexdigest(),
}))
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not _has_avx2(),
                    reason="the Haswell kernel needs an x86-64 CPU with AVX2")
def test_same_bytes_whichever_blas_kernel(tmp_path: Path) -> None:
    """Half the demo dataset (every zone, 256 px) is byte-identical under two OpenBLAS kernels
    (Sandybridge: AVX; Haswell: AVX2 and FMA) and under numpy's x86-64-v2 baseline loops with
    OpenBLAS's Nehalem kernel (an older CPU), so `data.dvc` holds on any x86-64 CPU. With the former
    `ab @ SPECTRA` mixing, Sandybridge and Haswell kernels changed 8 of 10 files of a 2-city run.
    Each run must prove its switch took effect (threadpoolctl's kernel name, numpy's dispatch
    targets, and control digests that differ), or the test fails rather than compares like with like."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    simd = " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f))  # numpy's optimised loops here
    assert simd, "numpy dispatches no SIMD loops on this CPU: the baseline run would change nothing"
    runs = {"Sandybridge": {"OPENBLAS_CORETYPE": "Sandybridge"}, "Haswell": {"OPENBLAS_CORETYPE": "Haswell"},
            "baseline": {"OPENBLAS_CORETYPE": "Nehalem", "NPY_DISABLE_CPU_FEATURES": simd}}
    reports, digests = {}, {}
    for name, env in runs.items():
        out = tmp_path / name
        base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
        proc = subprocess.run([sys.executable, "-c", _GENERATE_AND_REPORT, str(out)], check=True,
                              capture_output=True, text=True, env={**base, **env})
        reports[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        digests[name] = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(out.rglob("*.tif"))}
    kernels = {name: reports[name]["blas"] for name in runs}
    assert kernels == {"Sandybridge": ["Sandybridge"], "Haswell": ["Haswell"], "baseline": ["Nehalem"]}, (
        f"OPENBLAS_CORETYPE did not switch numpy's OpenBLAS kernel: {kernels}")
    assert reports["Sandybridge"]["matmul"] != reports["Haswell"]["matmul"], "the two kernels compute alike here"
    assert reports["Haswell"]["simd"] and not reports["baseline"]["simd"], {k: r["simd"] for k, r in reports.items()}
    assert reports["Haswell"]["exp"] != reports["baseline"]["exp"], "numpy's SIMD and baseline loops compute alike"
    assert len(digests["Haswell"]) == 12 * 5
    for name in ("Sandybridge", "baseline"):
        assert digests[name] == digests["Haswell"], (
            name, sorted(k for k in digests["Haswell"] if digests["Haswell"][k] != digests[name].get(k)))
