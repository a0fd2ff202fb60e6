"""Test evaluation on whole tiles, through the same sliding-window code batch inference uses.

One confusion matrix is accumulated over every labelled test pixel (each pixel counted once);
every figure derives from it (landcover.metrics). Per-city and per-zone matrices give the
geographic spread; re-running with each season blanked to nodata measures robustness to a
missing mosaic.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import torch
from rasterio.windows import Window

from landcover.bands import RGB_BAND_INDICES, SEASONS
from landcover.classes import CLASS_NAMES, NUM_CLASSES
from landcover.config import Params
from landcover.dataset import TileRef, read_cities, read_label
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_path, atomic_write_json
from landcover.lineage import data_version_of, file_hash
from landcover.metrics import confusion_counts, scores_from_confusion
from landcover.model.calibration import CalibrationCounts
from landcover.model.loading import load_bundle
from landcover.plots import (
    confusion_matrix_figure,
    per_class_bars,
    quicklook_figure,
    reliability_figure,
    true_colour,
)
from landcover.sliding import SlidingPredictor, TileSource
from landcover.splitfile import read_split
from landcover.tracking import connect

SAMPLE_EVERY = 97  # pixels kept for DVC's confusion plot (a prime, so no grid aliasing)
QUICKLOOKS = "quicklooks"  # PNGs of the first test tiles, logged with the candidate's run
QUICKLOOK_TILES = 3


@dataclass
class EvalResult:
    metrics: dict
    out_dir: Path
    confusion: np.ndarray


def tile_confusion(predictor: SlidingPredictor, tile: TileRef, drop: str | tuple[str, ...] | None = None,
                   samples: list | None = None, calibration: CalibrationCounts | None = None,
                   maps: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The confusion matrix of one tile (seasons in `drop` read as nodata); `calibration`, when
    given, receives each labelled pixel's top-class probability and whether it was right; `maps`,
    when given, receives the tile's predicted classes and confidence (for quicklooks)."""
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    with TileSource(tile, drop) as src:
        if maps is not None:
            maps["land cover"] = np.zeros((src.height, src.width), np.uint8)
            maps["confidence"] = np.zeros((src.height, src.width), np.uint8)
        def score(row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
            nonlocal cm
            label = read_label(tile, Window(0, row0, src.width, probs.shape[1]))
            target = label.astype(np.int64) - 1
            target[(label == 0) | (label > NUM_CLASSES) | ~valid] = 255  # unlabelled / no data
            pred = probs.argmax(0)
            cm += confusion_counts(pred, target)
            if maps is not None:
                rows = slice(row0, row0 + probs.shape[1])
                maps["land cover"][rows] = np.where(valid, pred + 1, 0)
                maps["confidence"][rows] = np.where(valid, np.round(probs.max(0) * 100), 0)
            if calibration is not None:
                scored = target != 255
                calibration.update(probs.max(0)[scored], (pred == target)[scored])
            if samples is not None:
                t, pr = target.ravel(), pred.ravel()
                keep = np.flatnonzero(t != 255)[::SAMPLE_EVERY]
                samples.extend(zip(t[keep].tolist(), pr[keep].tolist(), strict=True))

        predictor.predict(src, score)
    return cm


class PointSampler:
    """Reference points on the test tiles (`evaluate.points`, read as `assess.points` says): the
    predicted class at each point, then the accuracies with 95 % intervals of a simple random sample
    (the points on the test tiles are not a design over a map, so no areas are estimated)."""

    def __init__(self, p: Params, path: Path) -> None:
        from landcover.refpoints import points_from_params

        self.path = Path(path)
        self.points = points_from_params(p.assess.points, self.path)
        geometry = self.points.frame.geometry
        self.lon, self.lat = geometry.x.to_numpy(), geometry.y.to_numpy()
        self.predicted = np.zeros(len(self.lon), np.int64)
        self.seen = np.zeros(len(self.lon), bool)

    def sample(self, tile: TileRef, classes: np.ndarray) -> None:
        import rasterio
        from pyproj import Transformer

        with rasterio.open(tile.season_path(SEASONS[0])) as src:
            crs, transform = src.crs, src.transform
        x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(self.lon, self.lat)
        cols, rows = ~transform * (np.asarray(x), np.asarray(y))
        cols, rows = np.floor(cols).astype(np.int64), np.floor(rows).astype(np.int64)
        inside = (~self.seen & (rows >= 0) & (rows < classes.shape[0]) & (cols >= 0) & (cols < classes.shape[1]))
        self.predicted[inside] = classes[rows[inside], cols[inside]]
        self.seen |= inside

    def figures(self) -> dict:
        from landcover.accuracy import assess

        ref = self.points.codes
        used = self.seen & (self.predicted > 0) & (ref > 0)
        out = {"file": str(self.path), "points": int(len(ref)), "used": int(used.sum()),
               "outside_test_tiles": int((~self.seen).sum()), "nodata": int((self.seen & (self.predicted == 0)).sum()),
               "not_comparable": int((self.seen & (self.predicted > 0) & (ref == 0)).sum())}
        if not used.any():
            return out
        a = assess(self.predicted[used], ref[used], classes=list(range(1, NUM_CLASSES + 1)))
        out["overall_accuracy"] = a.overall.as_dict()
        out["users_accuracy"] = {CLASS_NAMES[c - 1]: a.users[c].as_dict() for c in a.classes}
        out["producers_accuracy"] = {CLASS_NAMES[c - 1]: a.producers[c].as_dict() for c in a.classes}
        return out


def _named(values: list[float]) -> dict[str, float]:
    return {n: round(float(v), 4) for n, v in zip(CLASS_NAMES, values, strict=True)}


def run_evaluation(p: Params, data_root: Path, split_file: Path, model_uri: str, out_dir: Path | None = None,
                   metrics_path: Path | None = None, log_to_run: str | None = None,
                   missing_seasons: bool = True, progress: Callable[[int, int, str], None] | None = None
                   ) -> EvalResult:
    out_dir = Path(out_dir or p.evaluate.out)
    connect(p.tracking_uri(), p.mlflow.experiment)
    tiles = read_split(split_file, data_root, "test")
    if not tiles:
        raise LandcoverError(f"{split_file}: the test split is empty")
    cities = read_cities(Path(data_root) / "cities.csv")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bundle, ref = load_bundle(model_uri, device)
    predictor = SlidingPredictor(bundle, p.inference.window, p.inference.overlap, p.inference.batch_size, device,
                                 tta=p.inference.tta, background_nice=p.inference.background_nice)
    calibration = CalibrationCounts()

    total = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    by_city: dict[str, np.ndarray] = defaultdict(lambda: np.zeros_like(total))
    by_zone: dict[str, np.ndarray] = defaultdict(lambda: np.zeros_like(total))
    samples: list[tuple[int, int]] = []
    quicklooks = out_dir / QUICKLOOKS
    points = PointSampler(p, p.evaluate.points) if p.evaluate.points else None
    for k, tile in enumerate(tiles, start=1):
        maps: dict[str, np.ndarray] | None = {} if k <= QUICKLOOK_TILES or points else None
        cm = tile_confusion(predictor, tile, None, samples, calibration, maps)
        if maps and k <= QUICKLOOK_TILES:
            tile_quicklook(tile, maps, quicklooks / f"{tile.city_id}_{tile.tile_id}.png")
        if points:
            points.sample(tile, maps["land cover"])
        total += cm
        by_city[tile.city_id] += cm
        zone = cities[tile.city_id].climate_zone if tile.city_id in cities else "unknown"
        by_zone[zone] += cm
        if progress:
            progress(k, len(tiles), tile.key)

    # the same pixels through the raw softmax: what calibration changed (skipped when T is 1)
    uncalibrated = calibration
    if bundle.meta.temperature != 1.0:
        uncalibrated = CalibrationCounts()
        raw = dataclasses.replace(predictor, calibrated=False)
        for tile in tiles:
            tile_confusion(raw, tile, None, None, uncalibrated)

    season_miou = {}
    if missing_seasons:
        for season in SEASONS:
            cm = sum(tile_confusion(predictor, t, season, None) for t in tiles)
            season_miou[season] = round(scores_from_confusion(cm)["miou"], 4)

    s = scores_from_confusion(total)
    metrics = {
        "miou": round(s["miou"], 4), "accuracy": round(s["accuracy"], 4),
        "iou": _named(s["iou"]), "precision": _named(s["precision"]), "recall": _named(s["recall"]),
        "f1": _named(s["f1"]),
        "per_city": {c: round(scores_from_confusion(m)["miou"], 4) for c, m in sorted(by_city.items())},
        "per_zone": {z: round(scores_from_confusion(m)["miou"], 4) for z, m in sorted(by_zone.items())},
        "missing_season": season_miou,
        "ece": round(calibration.ece(), 4), "ece_uncalibrated": round(uncalibrated.ece(), 4),
        "temperature": bundle.meta.temperature, "tta": p.inference.tta,
        "pixels": int(total.sum()), "tiles": len(tiles),
        # IoU of a class with no reference pixels is undefined (reported 0.0, left out of the mIoU)
        "absent_classes": [n for n, row in zip(CLASS_NAMES, total.sum(1), strict=True) if row == 0],
        "model_uri": ref.resolved_uri, "run_id": ref.run_id,
        "split_hash": file_hash(split_file), "data_version": data_version_of(data_root),
    }
    if points:
        metrics["points"] = points.figures()
    _write_outputs(out_dir, metrics, total, samples, {"calibrated": calibration, "uncalibrated": uncalibrated})
    if metrics_path:
        atomic_write_json(Path(metrics_path), metrics)
    if log_to_run:
        _log(log_to_run, metrics, out_dir)
    return EvalResult(metrics, out_dir, total)


def _write_outputs(out_dir: Path, metrics: dict, cm: np.ndarray, samples: list[tuple[int, int]],
                   calibration: dict[str, CalibrationCounts]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    reliability_figure(calibration, out_dir / "reliability.png")
    for state, counts in calibration.items():  # DVC plot: accuracy against confidence, a file per state
        with atomic_path(out_dir / f"reliability_{state}.csv") as tmp, tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["confidence", "accuracy", "share"])
            w.writerows((r["confidence"], r["accuracy"], r["share"]) for r in counts.table() if r["share"])
    confusion_matrix_figure(cm, out_dir / "confusion_matrix.png", f"Test confusion matrix (mIoU {metrics['miou']:.3f})")
    per_class_bars(metrics["iou"], out_dir / "per_class_iou.png", "Test IoU per class")
    with atomic_path(out_dir / "confusion_matrix.csv") as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["reference"] + list(CLASS_NAMES))
        for name, row in zip(CLASS_NAMES, cm.tolist(), strict=True):
            w.writerow([name, *row])
    with atomic_path(out_dir / "confusion_samples.csv") as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)  # DVC's confusion template needs one record per (sampled) pixel
        w.writerow(["actual", "predicted"])
        w.writerows((CLASS_NAMES[a], CLASS_NAMES[b]) for a, b in samples)
    with atomic_path(out_dir / "per_class.csv") as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "iou", "precision", "recall", "f1"])
        for name in CLASS_NAMES:
            w.writerow([name, metrics["iou"][name], metrics["precision"][name], metrics["recall"][name],
                        metrics["f1"][name]])


def _log(run_id: str, metrics: dict, out_dir: Path) -> None:
    with mlflow.start_run(run_id=run_id):
        flat = {"test_miou": metrics["miou"], "test_accuracy": metrics["accuracy"]}
        for group in ("iou", "f1", "precision", "recall"):
            flat.update({f"test_{group}_{k.replace(' ', '_')}": v for k, v in metrics[group].items()})
        flat.update({f"test_miou_zone_{k}": v for k, v in metrics["per_zone"].items()})
        flat.update({f"test_miou_without_{k}": v for k, v in metrics["missing_season"].items()})
        flat.update({"test_ece": metrics["ece"], "test_ece_uncalibrated": metrics["ece_uncalibrated"]})
        if (metrics.get("points") or {}).get("overall_accuracy"):
            flat["test_points_overall_accuracy"] = metrics["points"]["overall_accuracy"]["value"]
            flat["test_points_overall_accuracy_ci95"] = metrics["points"]["overall_accuracy"]["ci95"]
            flat["test_points_used"] = metrics["points"]["used"]
        mlflow.log_metrics(flat)
        for name in ("confusion_matrix.png", "per_class_iou.png", "reliability.png", "metrics.json",
                     "confusion_matrix.csv"):
            mlflow.log_artifact(str(out_dir / name), "evaluation")
        if (out_dir / QUICKLOOKS).is_dir():  # the registry's model version links to this run: images render there
            mlflow.log_artifacts(str(out_dir / QUICKLOOKS), f"evaluation/{QUICKLOOKS}")


def tile_quicklook(tile: TileRef, maps: dict[str, np.ndarray], path: Path, max_side: int = 800) -> Path:
    """Summer composite, reference labels, prediction and confidence of one test tile."""
    import rasterio
    from rasterio.enums import Resampling

    step = max(1, -(-max(maps["land cover"].shape) // max_side))
    with rasterio.open(tile.season_path("summer")) as src:
        h, w = -(-src.height // step), -(-src.width // step)
        rgb = src.read([i + 1 for i in RGB_BAND_INDICES], out_shape=(3, h, w), resampling=Resampling.average)
    panels = {"summer RGB": true_colour(np.moveaxis(rgb, 0, -1)),
              "reference": read_label(tile)[::step, ::step],
              "land cover": maps["land cover"][::step, ::step], "confidence": maps["confidence"][::step, ::step]}
    return quicklook_figure(panels, path, f"test tile {tile.key}")
