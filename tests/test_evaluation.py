"""Whole-tile test evaluation: metrics from one confusion matrix, same code as inference."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from conftest import REPO, TINY_TRAIN
from landcover.classes import CLASS_NAMES
from landcover.config import load_params
from landcover.dataset import read_label
from landcover.evaluation.stage import run_evaluation
from landcover.inference.sliding import SlidingPredictor, predict_tile_classes
from landcover.metrics import confusion_counts, scores_from_confusion
from landcover.model.loading import load_bundle
from landcover.split.splitfile import read_split


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


def test_metrics_match_the_inference_code(evaluation, tiny_model, tiny_dataset, tiny_split) -> None:
    """The figures come from the same sliding-window predictions batch inference writes."""
    result, p = evaluation
    bundle, _ = load_bundle(tiny_model.model_uri)
    predictor = SlidingPredictor(bundle, p.inference.window, p.inference.overlap, p.inference.batch_size)
    cm = np.zeros((10, 10), np.int64)
    for tile in read_split(tiny_split, tiny_dataset, "test"):
        codes, _ = predict_tile_classes(predictor, tile)
        label = read_label(tile)
        target = np.where((label > 0) & (codes > 0), label.astype(np.int64) - 1, 255)
        cm += confusion_counts(codes.astype(np.int64) - 1, target)
    assert np.array_equal(cm, result.confusion)


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
