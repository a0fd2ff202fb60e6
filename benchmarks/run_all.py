"""`make bench`: every figure script in its own process, one JSON line each, then a table.

Each script prints its JSON line (also written to benchmarks/results/<figure>.json); this runner
adds benchmarks/results/summary.json with all of them and prints a Markdown table of figure, ratio,
target and whether it was met. Options: BENCH_QUICK=1 (smoke run: fewer repeats, smaller inputs),
BENCH_THREADS=N (torch threads), BENCH_ONLY=name,name (run some scripts), BENCH_KEEP_DATA=1 (keep
the 8192 px mosaic). Exit status 1 when a script fails; a missed target is reported, not an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SCRIPTS = [  # quickest first, so a broken machine shows early
    ("synth_and_dvc", "bench_synth_and_dvc.py"),
    ("synth_memory", "bench_synth_memory.py"),
    ("validation", "bench_validation.py"),
    ("training_input", "bench_training_input.py"),
    ("mosaic", "bench_mosaic.py"),
    ("inference_overhead", "bench_inference_overhead.py"),
    ("inference_memory", "bench_inference_memory.py"),
    ("gpu", "bench_gpu.py"),
]


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return str(value)


def _raw(line: dict) -> str:
    keys = {
        "synth_and_dvc": ("synth_mpx_per_s", "dvc_repro_noop_s", "dvc_stages_to_run"),
        "synth_memory": ("peak_rss_mb_big", "peak_rss_mb_small", "growth_ratio", "size_big"),
        "validation": ("validate_s_per_tile", "read_decode_s_per_tile"),
        "training_input": ("store_warm_256px_crops_per_s_per_core", "memmap_warm_256px_crops_per_s_per_core",
                           "geotiff_warm_256px_crops_per_s_per_core", "store_to_memmap_cold_256px"),
        "inference_overhead": ("batch_inference_s", "bare_forward_s", "torch_threads"),
        "inference_memory": ("peak_rss_mb_big", "peak_rss_mb_small", "growth_ratio", "size_big"),
        "mosaic": ("mosaic_out_mpx_per_s_per_core", "decode_in_mpx_per_s_per_core", "mosaic_out_mpx_per_s_2_threads"),
        "gpu": ("train_samples_per_s", "train_gpu_util_pct", "inference_km2_per_s", "reason"),
    }.get(line.get("figure"), ())
    return ", ".join(f"{k} {line[k]}" for k in keys if line.get(k) is not None)


def main() -> int:
    only = {s for s in os.environ.get("BENCH_ONLY", "").split(",") if s}
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines, failed = [], []
    start = time.perf_counter()
    for name, script in SCRIPTS:
        if only and name not in only:
            continue
        print(f"== {name} ({script})", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / script)], cwd=HERE.parent, stdout=subprocess.PIPE,
                              text=True)
        sys.stdout.write(proc.stdout)
        sys.stdout.flush()
        found = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        if proc.returncode != 0 or not found:
            failed.append(name)
            print(f"== {name}: FAILED (exit {proc.returncode})", file=sys.stderr, flush=True)
            continue
        found[-1]["bench_wall_s"] = round(time.perf_counter() - t0, 1)
        lines.append(found[-1])
    total = round(time.perf_counter() - start, 1)
    (RESULTS / "summary.json").write_text(json.dumps({"wall_s": total, "failed": failed, "figures": lines},
                                                     indent=2, default=str) + "\n")
    print("\n| figure | ratio | target | met | raw numbers | wall s |\n|---|---:|---|---|---|---:|",
          file=sys.stderr)
    for line in lines:
        print(f"| {line['figure']} | {_fmt(line.get('ratio'))} | {line.get('target')} | {_fmt(line.get('met'))} | "
              f"{_raw(line)} | {line['bench_wall_s']} |", file=sys.stderr)
    print(f"\nall figures in {total} s; results in {RESULTS}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
