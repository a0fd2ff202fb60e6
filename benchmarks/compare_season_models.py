"""Early fusion against the season-aware model, each with and without test-time augmentation, in
one run on the same split and data (the demo dataset and params.yaml's training settings).

For each architecture: train (params.yaml `train`, only `train.arch` changed), then on the test
tiles, through the batch-inference sliding window: mIoU and per-class IoU; mIoU with each season
missing and with each pair of seasons missing; ECE before and after temperature scaling; each with
and without D4 TTA. Beside them: parameters, GFLOPs per 256 px window, CPU ms per window.

Writes benchmarks/results/season_models.json and prints a Markdown table (docs/training.md holds
the numbers of the run the default was decided on). About half an hour on 2 cores.
Run: `.venv/bin/python benchmarks/compare_season_models.py` (BENCH_QUICK=1: 2 epochs, a smoke run).
"""

from __future__ import annotations

import itertools
import os
import sys
import time

import _common as c

ARCHS = ("Unet", "SeasonAwareUnet")


def demo_data():
    from landcover.config import load_params
    from landcover.split.stage import run_split

    root = c.synth_dataset("demo", 256, cities=12, tiles_per_city=2, seed=42)
    split = c.RESULTS / "work" / "compare" / "split.csv"
    if not split.is_file():
        run_split(load_params(c.REPO / "params.yaml"), root, split, split.with_suffix(".json"))
    return root, split


def cost(arch: str, p) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from landcover.model.network import build_network

    net = build_network(arch, p.train.encoder, p.train.encoder_depth).eval()
    x = torch.randn(1, 40, 256, 256)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    batch = torch.randn(4, 40, 256, 256)
    times = []
    with torch.no_grad():
        net(batch)
        for _ in range(5):
            t0 = time.perf_counter()
            net(batch)
            times.append((time.perf_counter() - t0) / 4)
    return {"parameters": sum(q.numel() for q in net.parameters()),
            "gflops_per_256_window": c.rnd(counter.get_total_flops() / 1e9, 2),
            "cpu_ms_per_256_window": c.rnd(1000 * c.median(times), 1)}


def evaluate(model_uri: str, p, root, split, tta: bool) -> dict:
    import dataclasses

    from landcover.bands import SEASONS
    from landcover.evaluation.stage import tile_confusion
    from landcover.metrics import scores_from_confusion
    from landcover.model.calibration import CalibrationCounts
    from landcover.model.loading import load_bundle
    from landcover.sliding import SlidingPredictor
    from landcover.splitfile import read_split

    bundle, _ = load_bundle(model_uri)
    tiles = read_split(split, root, "test")
    predictor = SlidingPredictor(bundle, p.inference.window, p.inference.overlap, p.inference.batch_size, tta=tta)

    def miou(drop=None, counts=None, pred=predictor):
        cm = sum(tile_confusion(pred, t, drop, None, counts) for t in tiles)
        return scores_from_confusion(cm)

    calibrated, raw = CalibrationCounts(), CalibrationCounts()
    full = miou(None, calibrated)
    miou(None, raw, dataclasses.replace(predictor, calibrated=False))
    from landcover.classes import CLASS_NAMES

    one = {s: c.rnd(miou((s,))["miou"]) for s in SEASONS}
    two = {f"{a}+{b}": c.rnd(miou((a, b))["miou"]) for a, b in itertools.combinations(SEASONS, 2)}
    return {"miou": c.rnd(full["miou"]), "iou": {n: c.rnd(v) for n, v in zip(CLASS_NAMES, full["iou"], strict=True)},
            "missing_one": one, "worst_missing_one": min(one.values()),
            "missing_two": two, "worst_missing_two": min(two.values()),
            "ece_uncalibrated": c.rnd(raw.ece()), "ece_calibrated": c.rnd(calibrated.ece())}


def main() -> dict:
    import mlflow

    from landcover.config import load_params
    from landcover.pack.stage import run_pack
    from landcover.training.stage import run_train

    root, split = demo_data()
    work = c.RESULTS / "work" / "compare"
    uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    quick = {"train.epochs": 2} if c.quick() else {}
    results: dict = {}
    cwd = os.getcwd()
    os.chdir(work)  # run_train writes metrics/ and plots/ relative to the working directory
    try:
        store = run_pack(load_params(c.REPO / "params.yaml"), root, split, work / "store.zarr").out
        for arch in ARCHS:
            p = load_params(c.REPO / "params.yaml", {"train.arch": arch, **quick})
            c.log(f"training {arch} ({p.train.epochs} epochs max)")
            t0 = time.perf_counter()
            trained = run_train(p, root, split, work / arch, store=store)
            train_s = time.perf_counter() - t0
            entry = {"train_s": c.rnd(train_s, 1), "temperature": trained.metrics.get("calibration_temperature"),
                     "val_miou": trained.metrics.get("val_miou"), **cost(arch, p)}
            for tta in (False, True):
                c.log(f"evaluating {arch}, TTA {tta}")
                t0 = time.perf_counter()
                entry["tta" if tta else "plain"] = {**evaluate(trained.model_uri, p, root, split, tta),
                                                   "eval_s": c.rnd(time.perf_counter() - t0, 1)}
            results[arch] = entry
    finally:
        os.chdir(cwd)
    line = c.emit("season_models", {"ratio": None, "target": "report", "met": None, "results": results,
                                     "epochs": load_params(c.REPO / "params.yaml", quick).train.epochs})
    print(table(results), file=sys.stderr)
    return line


def table(results: dict) -> str:
    cols = [(a, v) for a in ARCHS for v in ("plain", "tta")]
    head = "| | " + " | ".join(f"{a}{' + TTA' if v == 'tta' else ''}" for a, v in cols) + " |"
    rows = [head, "|---" * (len(cols) + 1) + "|"]

    def row(name, fn):
        rows.append(f"| {name} | " + " | ".join(str(fn(results[a], results[a][v])) for a, v in cols) + " |")

    row("test mIoU", lambda e, r: r["miou"])
    for s in ("spring", "summer", "autumn", "winter"):
        row(f"mIoU without {s}", lambda e, r, s=s: r["missing_one"][s])
    row("worst one season missing", lambda e, r: r["worst_missing_one"])
    row("worst two seasons missing", lambda e, r: r["worst_missing_two"])
    row("ECE before calibration", lambda e, r: r["ece_uncalibrated"])
    row("ECE after calibration", lambda e, r: r["ece_calibrated"])
    row("parameters", lambda e, r: f"{e['parameters'] / 1e6:.1f} M")
    row("GFLOPs per 256 px window", lambda e, r: e["gflops_per_256_window"] * (8 if r is e["tta"] else 1))
    row("CPU ms per 256 px window", lambda e, r: round(e["cpu_ms_per_256_window"] * (8 if r is e["tta"] else 1)))
    return "\n".join(rows)


if __name__ == "__main__":
    main()
