"""Whole-tile test evaluation: metrics from one confusion matrix, same sliding window as inference,
checked against counts and probabilities computed outside the evaluation code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import rasterio
import torch

from conftest import REPO, TINY_TRAIN
from landcover.classes import CLASS_NAMES
from landcover.cli import main as cli_main
from landcover.config import load_params
from landcover.dataset import read_label
from landcover.evaluation.stage import run_evaluation
from landcover.inference.stage import run_predict
from landcover.metrics import confusion_counts, scores_from_confusion
from landcover.model.loading import load_bundle
from landcover.splitfile import read_split
from test_inference import SHARP_TEMPERATURE, TTA_ONE_WINDOW, d4_logits, mean_softmax, varied_model_uri


def test_scores_from_a_known_confusion_matrix() -> None:
    cm = np.zeros((10, 10), np.int64)
    cm[0, 0], cm[0, 1], cm[1, 1], cm[2, 2] = 6, 2, 4, 5
    s = scores_from_confusion(cm)
    assert s["iou"][0] == pytest.approx(6 / 8)
    assert s["iou"][1] == pytest.approx(4 / 6)
    assert s["iou"][2] == 1.0
    assert s["miou"] == pytest.approx((6 / 8 + 4 / 6 + 1) / 3)  # classes absent from the reference excluded
    assert s["accuracy"] == pytest.approx(15 / 17)
    assert s["precision"][1] == pytest.approx(4 / 6) and s["recall"][0] == pytest.approx(6 / 8)


def test_confusion_counts_ignore_unlabelled() -> None:
    pred = np.array([0, 1, 2, 3])
    target = np.array([0, 1, 255, 3])
    cm = confusion_counts(pred, target)
    assert cm.sum() == 3 and cm[0, 0] == cm[1, 1] == cm[3, 3] == 1


@pytest.fixture(scope="module")
def evaluation(tiny_model, tiny_dataset, tiny_split, mlflow_store, tmp_path_factory):
    p = load_params(REPO / "params.yaml", TINY_TRAIN)
    out = tmp_path_factory.mktemp("eval")
    return run_evaluation(p, tiny_dataset, tiny_split, tiny_model.model_uri, out / "report",
                          out / "evaluate.json", log_to_run=tiny_model.run_id), p


def test_every_labelled_test_pixel_counted_once(evaluation, tiny_dataset, tiny_split) -> None:
    result, _ = evaluation
    tiles = read_split(tiny_split, tiny_dataset, "test")
    labelled = sum(int(((read_label(t) > 0) & (read_label(t) <= 10)).sum()) for t in tiles)
    assert result.metrics["pixels"] == int(result.confusion.sum())
    # pixels with no observation at all are not scored; the synthetic data has only small holes
    assert 0.95 * labelled <= result.metrics["pixels"] <= labelled


def _hand_confusion(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(10, 10) counts, rows = reference, columns = prediction, by np.add.at (not bincount)."""
    cm = np.zeros((10, 10), np.int64)
    np.add.at(cm, (target, pred), 1)
    return cm


def _read_confusion_csv(path: Path) -> np.ndarray:
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["reference", *CLASS_NAMES] and [r[0] for r in rows[1:]] == list(CLASS_NAMES)
    return np.array([[int(v) for v in r[1:]] for r in rows[1:]], np.int64)


def _points_on_test_tiles(root: Path, split: Path, path: Path) -> list[tuple[str, int, int, int]]:
    """Reference points at pixel centres of the test tiles (their label as the reference) and one far
    away, as a CSV of longitude and latitude: (tile key, row, column, label) of each on a tile."""
    from pyproj import Transformer

    rows, found = [], []
    for tile in read_split(split, root, "test"):
        with rasterio.open(tile.label_path) as lb:
            label, transform, crs = lb.read(1), lb.transform, lb.crs
        for r, c in ((5, 7), (40, 90), (100, 30), (200, 200), (250, 10)):
            if r < label.shape[0] and c < label.shape[1]:
                x, y = transform * (c + 0.5, r + 0.5)
                lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
                rows.append({"lon": lon, "lat": lat, "reference": int(label[r, c])})
                found.append((tile.key, r, c, int(label[r, c]) if int(label[r, c]) <= 10 else 0))
    rows.append({"lon": -30.0, "lat": 10.0, "reference": 5})
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
    return found


def test_metrics_equal_a_hand_count_of_the_written_maps(tiny_model, tiny_dataset, tiny_split, mlflow_store,
                                                        tmp_path) -> None:
    """Evaluation's confusion matrix and scores equal those counted here from the maps `landcover
    predict` writes and the label rasters, with IoU, F1, precision, recall and mIoU from their
    definitions. Independent of evaluation's scoring: the maps come through predict's writer
    (argmax in `write_tile`, a COG round trip), the labels are read with rasterio, the counts made
    with np.add.at; evaluation scores with `tile_confusion`, `confusion_counts` and
    `scores_from_confusion`. Both share only the network and the sliding window (tests/test_sliding.py).
    Default inference settings (overlapping windows, no TTA); a sharpened model, so several classes
    are predicted and every score has something to get wrong."""
    points = _points_on_test_tiles(tiny_dataset, tiny_split, tmp_path / "points.csv")
    p = load_params(REPO / "params.yaml", {**TINY_TRAIN, "evaluate.points": str(tmp_path / "points.csv")})
    uri = varied_model_uri(p, tiny_model.model_uri, tmp_path)
    result = run_evaluation(p, tiny_dataset, tiny_split, uri, tmp_path / "eval", missing_seasons=False)
    assert not run_predict(p, tiny_dataset, tmp_path / "maps", uri, tiny_split, "test").failed
    # reference points on the test tiles: the written map at each point against its label
    right = used = 0
    for key, row, col, label in points:
        with rasterio.open(tmp_path / "maps" / key / "landcover.tif") as lc:
            code = int(lc.read(1)[row, col])
        used += code > 0 and label > 0
        right += code > 0 and code == label
    figures = result.metrics["points"]
    assert figures["used"] == used and figures["outside_test_tiles"] == 1
    assert figures["overall_accuracy"]["value"] == pytest.approx(right / used, abs=5.1e-5)
    assert figures["overall_accuracy"]["se"] == pytest.approx(np.sqrt(right / used * (1 - right / used) / (used - 1)),
                                                              abs=5.1e-5)
    from landcover.promotion.model_card import _points

    assert f"{right / used:.3f}" in "\n".join(_points(result.metrics))
    cm = np.zeros((10, 10), np.int64)
    for tile in read_split(tiny_split, tiny_dataset, "test"):
        with rasterio.open(tmp_path / "maps" / tile.city_id / tile.tile_id / "landcover.tif") as lc:
            codes = lc.read(1).astype(np.int64)
        with rasterio.open(tile.label_path) as lb:
            label = lb.read(1).astype(np.int64)
        scored = (codes > 0) & (label >= 1) & (label <= 10)  # predicted (observed) and labelled
        cm += _hand_confusion(label[scored] - 1, codes[scored] - 1)
    assert (cm.sum(0) > 0).sum() >= 3 and (cm.sum(1) > 0).sum() >= 3, cm  # several classes on both axes
    assert np.array_equal(result.confusion, cm)
    assert np.array_equal(_read_confusion_csv(tmp_path / "eval/confusion_matrix.csv"), cm)
    m, present = result.metrics, []
    for k, name in enumerate(CLASS_NAMES):
        tp, fp, fn = cm[k, k], cm[:, k].sum() - cm[k, k], cm[k, :].sum() - cm[k, k]
        iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
        assert m["iou"][name] == pytest.approx(iou, abs=5.1e-5)  # reported to 4 decimals
        assert m["f1"][name] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0, abs=5.1e-5)
        assert m["precision"][name] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0, abs=5.1e-5)
        assert m["recall"][name] == pytest.approx(tp / (tp + fn) if tp + fn else 0.0, abs=5.1e-5)
        if tp + fn:  # mIoU: the mean over classes present in the reference
            present.append(iou)
    assert m["miou"] == pytest.approx(sum(present) / len(present), abs=5.1e-5)
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=5.1e-5) and m["pixels"] == cm.sum()


def test_tta_evaluation_scores_the_mean_of_the_eight_d4_views(tiny_model, tiny_dataset, tiny_split, mlflow_store,
                                                               tmp_path) -> None:
    """`landcover evaluate` with `inference.tta: true` scores the mean of the eight D4 views'
    probabilities computed here without landcover's code: the same confusion matrix (up to
    near-ties float noise may flip) and the same ECE, calibrated and not (torchmetrics)."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    p = load_params(REPO / "params.yaml", TINY_TRAIN)
    uri = varied_model_uri(p, tiny_model.model_uri, tmp_path)
    sets = [f"--set={k}={v}" for k, v in {**TINY_TRAIN, **TTA_ONE_WINDOW}.items()]
    assert cli_main(["--params", str(REPO / "params.yaml"), *sets, "evaluate", "--data", str(tiny_dataset), "--split",
                     str(tiny_split), "--model", uri, "--out", str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval/metrics.json").read_text())
    bundle, _ = load_bundle(uri)
    cm, plain_cm, ties = np.zeros((10, 10), np.int64), np.zeros((10, 10), np.int64), 0
    probs: dict[str, list[np.ndarray]] = {"calibrated": [], "uncalibrated": [], "no TTA": []}
    targets = []
    for tile in read_split(tiny_split, tiny_dataset, "test"):
        views, valid = d4_logits(bundle, tile)
        with rasterio.open(tile.label_path) as lb:
            label = lb.read(1).astype(np.int64)
        scored = valid & (label >= 1) & (label <= 10)
        want = mean_softmax(views, SHARP_TEMPERATURE)
        top = np.sort(want, axis=0)
        ties += int((top[-1] - top[-2] <= 1e-4)[scored].sum())
        cm += _hand_confusion(label[scored] - 1, want.argmax(0)[scored])
        plain = mean_softmax(views[:1], SHARP_TEMPERATURE)
        plain_cm += _hand_confusion(label[scored] - 1, plain.argmax(0)[scored])
        for name, pr in (("calibrated", want), ("uncalibrated", mean_softmax(views, 1.0)), ("no TTA", plain)):
            probs[name].append(pr[:, scored].T)
        targets.append(label[scored] - 1)
    got = _read_confusion_csv(tmp_path / "eval/confusion_matrix.csv")
    assert np.abs(got - cm).sum() <= 2 * ties and m["tta"] is True
    assert np.abs(plain_cm - cm).sum() > 2 * ties + 50  # without TTA the matrix would differ
    target = torch.from_numpy(np.concatenate(targets))
    ece = {name: float(multiclass_calibration_error(torch.from_numpy(np.concatenate(v)).float(), target,
                                                    num_classes=10, n_bins=15, norm="l1"))
           for name, v in probs.items()}
    # reported to 4 decimals; torchmetrics sums in float32
    assert m["ece"] == pytest.approx(ece["calibrated"], abs=1e-4)
    assert m["ece_uncalibrated"] == pytest.approx(ece["uncalibrated"], abs=1e-4)
    assert abs(ece["no TTA"] - ece["calibrated"]) > 3e-4 and abs(ece["uncalibrated"] - ece["calibrated"]) > 3e-4


def test_outputs_and_mlflow_logging(evaluation, tiny_model) -> None:
    result, _ = evaluation
    m = json.loads((result.out_dir.parent / "evaluate.json").read_text())
    assert set(m["iou"]) == set(CLASS_NAMES) and set(m["missing_season"]) == {"spring", "summer", "autumn", "winter"}
    assert m["per_zone"] and m["per_city"] and m["split_hash"] != "missing"
    for name in ("confusion_matrix.png", "per_class_iou.png", "confusion_samples.csv", "per_class.csv"):
        assert (result.out_dir / name).stat().st_size > 0
    header = (result.out_dir / "confusion_samples.csv").read_text().splitlines()[0]
    assert header == "actual,predicted"
    run = mlflow.get_run(tiny_model.run_id)
    assert run.data.metrics["test_miou"] == pytest.approx(m["miou"])
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(tiny_model.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in arts
    # quicklooks of the first test tiles, with the run the registry's model version points to
    looks = sorted(p.name for p in (result.out_dir / "quicklooks").glob("*.png"))
    assert 1 <= len(looks) <= 3
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(tiny_model.run_id, "evaluation/quicklooks")}
    assert logged == {f"evaluation/quicklooks/{n}" for n in looks}


def test_empty_test_split_is_an_error(tiny_model, tiny_dataset, mlflow_store, tmp_path: Path) -> None:
    from landcover.errors import LandcoverError

    split = tmp_path / "split.csv"
    split.write_text("city_id,tile_id,split\n")
    with pytest.raises(LandcoverError, match="test split is empty"):
        run_evaluation(load_params(REPO / "params.yaml", TINY_TRAIN), tiny_dataset, split, tiny_model.model_uri)
