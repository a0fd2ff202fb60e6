"""Are pretrained encoder weights used? A functional proof on synthetic data (not in CI).

Half of the synthetic cities stand in for pretraining: the default model is trained supervised on
them and its encoder's state dict saved (our bands, our order: no metadata file needed). The other
half has few labelled tiles: the model is fine-tuned from that encoder (`train.encoder_weights`, the
recipe's frozen first epoch and lower encoder rate) and, at the same small budget, from random
weights; both are evaluated on that half's test tiles. Three seeds per arm; mean and spread of the
test mIoU, with the MLflow run ids, go to `transfer-<budget>.json` and the terminal.

    python benchmarks/transfer.py [--out DIR] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _split(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["city_id", "tile_id", "split"])
        writer.writerows(rows)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/landcover-transfer"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cities", type=int, default=12)
    ap.add_argument("--pretrain-epochs", type=int, default=8)
    ap.add_argument("--finetune-epochs", type=int, default=4)
    ap.add_argument("--labelled-tiles", type=int, default=2)
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{out / 'mlflow.db'}")

    import torch

    from landcover.config import load_params
    from landcover.dataset import discover_tiles, read_cities
    from landcover.evaluation.stage import run_evaluation
    from landcover.model.bundle import ModelBundle
    from landcover.model.loading import load_bundle
    from landcover.synth.stage import run_synth
    from landcover.training.stage import run_train

    base = {"train.input": "geotiff", "mlflow.experiment": "transfer", "inference.batch_size": 8}
    p = load_params(REPO / "params.yaml", base)
    data = out / "data"
    run_synth(p, data, cities=args.cities, tiles_per_city=2, size=256, seed=11)
    cities = sorted(read_cities(data / "cities.csv"))
    tiles, _ = discover_tiles(data)
    by_city: dict[str, list[str]] = {}
    for t in tiles:
        by_city.setdefault(t.city_id, []).append(t.tile_id)
    half = len(cities) // 2
    pre, fine = cities[:half], cities[half:]

    # pretraining stand-in: supervised on the first half (one city for validation)
    pre_rows = [(c, t, "val" if c == pre[-1] else "train") for c in pre for t in by_city[c]]
    start = time.perf_counter()
    encoder_file, record = out / "encoder.pt", out / "pretrain.json"
    if not (encoder_file.is_file() and record.is_file()):  # pretrained once; later budgets reuse it
        pretrained = run_train(load_params(REPO / "params.yaml", {**base, "train.epochs": args.pretrain_epochs}),
                               data, _split(out / "split_pre.csv", pre_rows), out / "pretrain")
        bundle: ModelBundle = load_bundle(pretrained.model_uri)[0]
        torch.save(bundle.network.encoder.state_dict(), encoder_file)
        record.write_text(json.dumps({"run_id": pretrained.run_id, "seconds": round(time.perf_counter() - start, 1),
                                      "epochs": args.pretrain_epochs}))
    pre_record = json.loads(record.read_text())

    # the other half: a few labelled tiles to train on, one city to validate, the rest to test
    labelled = [(fine[0], t) for t in by_city[fine[0]]] + [(fine[1], t) for t in by_city[fine[1]]]
    labelled = labelled[: args.labelled_tiles]
    rows = [(c, t, "train") for c, t in labelled] + [(fine[2], t, "val") for t in by_city[fine[2]]]
    rows += [(c, t, "test") for c in fine[3:] for t in by_city[c]]
    tag = f"{args.finetune_epochs}ep-{len(labelled)}tiles"
    split = _split(out / f"split_fine-{tag}.csv", rows)

    arms = {"random": {"train.encoder_weights": None},
            "pretrained": {"train.encoder_weights": str(encoder_file), "train.freeze_encoder_epochs": 1,
                           "train.encoder_lr_multiplier": 0.1}}
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in args.seeds:
        for arm, settings in arms.items():
            q = load_params(REPO / "params.yaml", {**base, **settings, "train.seed": seed,
                                                   "train.epochs": args.finetune_epochs})
            t0 = time.perf_counter()
            trained = run_train(q, data, split, out / f"{tag}-{arm}-{seed}")
            evaluated = run_evaluation(q, data, split, trained.model_uri, out / f"eval-{tag}-{arm}-{seed}",
                                       missing_seasons=False)
            results[arm].append({"seed": seed, "test_miou": evaluated.metrics["miou"], "run_id": trained.run_id,
                                 "seconds": round(time.perf_counter() - t0, 1)})
            print(f"{arm} seed {seed}: test mIoU {evaluated.metrics['miou']:.4f} (run {trained.run_id})", flush=True)
    summary = {arm: {"mean": round(statistics.mean(r["test_miou"] for r in runs), 4),
                     "stdev": round(statistics.stdev(r["test_miou"] for r in runs), 4) if len(runs) > 1 else 0.0,
                     "runs": runs} for arm, runs in results.items()}
    report = {"cities": {"pretrain": pre, "finetune": fine}, "labelled_tiles": len(labelled),
              "test_tiles": sum(1 for r in rows if r[2] == "test"), "pretrain_run": pre_record["run_id"],
              "pretrain_seconds": pre_record["seconds"], "pretrain_epochs": pre_record["epochs"],
              "finetune_epochs": args.finetune_epochs, "arms": summary,
              "tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}
    (out / f"transfer-{tag}.json").write_text(json.dumps(report, indent=2))
    for arm, s in summary.items():
        print(f"{arm}: test mIoU {s['mean']:.4f} +/- {s['stdev']:.4f} over {len(s['runs'])} seeds")


if __name__ == "__main__":
    main()
