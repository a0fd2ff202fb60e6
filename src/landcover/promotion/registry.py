"""MLflow Model Registry helpers for promotion (MLflow 3 client API).

Tags written on a model version (all strings):

- `candidate_run_id`, `candidate_model_uri`: the training run and logged model it came from; the
  pair identifies the version, so promoting the same run again finds it instead of registering
  a second version.
- `git_commit`, `params_hash` (from the training run), `data_version`, `split_hash` (of the test
  split it was evaluated on), `test_miou`, `test_accuracy`, `test_iou_<Class_Name>`.
- `promotion_decision` (champion | challenger), `promotion_reasons` ("; "-joined, or "none"),
  `compared_with` (champion version and mIoU, or "none").
- `eval/<data_version>/<split_hash>`: JSON scores of a re-evaluation on another test split (cached
  so the champion is evaluated once per split version).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from landcover.classes import CLASS_NAMES, NUM_CLASSES
from landcover.promotion.gates import Check

RUN_TAG = "candidate_run_id"
URI_TAG = "candidate_model_uri"
CHAMPION, CHALLENGER = "champion", "challenger"
CHECK_SHAPE = (1, 40, 64, 64)
REEVALUATED = "re-evaluated on this test split (its own evaluation used another split version)"
REGISTERED_MODEL_DESCRIPTION = (
    "Land cover segmentation (10 classes) from multi-seasonal Sentinel-2, 10 m. "
    "`@champion` is the model batch inference uses; `@challenger` is the latest candidate that did "
    "not pass the promotion gates. Each version's description is its model card."
)


def class_tag(name: str) -> str:
    return "test_iou_" + name.replace(" ", "_")


def eval_tag(data_version: str, split_hash: str) -> str:
    return f"eval/{data_version}/{split_hash}"


def is_not_found(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        try:
            client.create_registered_model(name, description=REGISTERED_MODEL_DESCRIPTION)
        except MlflowException as exc2:  # created meanwhile by a concurrent promotion
            if exc2.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise


def find_version(client: MlflowClient, name: str, run_id: str, model_uri: str) -> ModelVersion | None:
    """The version registered earlier for this training run and logged model, if any (oldest)."""
    found = client.search_model_versions(f"name = '{name}' and tags.{RUN_TAG} = '{run_id}'")
    matches = [mv for mv in found if mv.tags.get(URI_TAG, mv.source) == model_uri]
    return min(matches, key=lambda mv: int(mv.version)) if matches else None


def register_version(client: MlflowClient, name: str, run_id: str, model_uri: str) -> tuple[ModelVersion, bool]:
    """(version, created): the existing version for this run, or a new one."""
    ensure_registered_model(client, name)
    existing = find_version(client, name, run_id, model_uri)
    if existing is not None:
        return existing, False
    mv = mlflow.register_model(model_uri, name, tags={RUN_TAG: run_id, URI_TAG: model_uri})
    return client.get_model_version(name, mv.version), True


def set_tags(client: MlflowClient, mv: ModelVersion, tags: Mapping[str, str]) -> None:
    """Set only the tags whose value changed (re-runs write nothing new)."""
    for key, value in tags.items():
        if mv.tags.get(key) != value:
            client.set_model_version_tag(mv.name, mv.version, key, value)


def metric_tags(metrics: Mapping[str, Any]) -> dict[str, str]:
    tags = {"test_miou": f"{float(metrics['miou']):.4f}",
            "data_version": str(metrics.get("data_version", "unknown")),
            "split_hash": str(metrics.get("split_hash", "unknown"))}
    if "accuracy" in metrics:
        tags["test_accuracy"] = f"{float(metrics['accuracy']):.4f}"
    for name, value in (metrics.get("iou") or {}).items():
        tags[class_tag(name)] = f"{float(value):.4f}"
    return tags


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Version number the alias points to, or None."""
    try:
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise
    version = aliases.get(alias)
    return str(version) if version is not None else None


def metrics_from_tags(mv: ModelVersion, data_version: str, split_hash: str) -> dict[str, Any] | None:
    """The version's test scores on (data_version, split_hash) from its tags, or None if it has
    none for that split version."""
    tags = mv.tags
    try:
        if tags.get("data_version") == data_version and tags.get("split_hash") == split_hash and "test_miou" in tags:
            iou = {n: float(tags[class_tag(n)]) for n in CLASS_NAMES if class_tag(n) in tags}
            scores = {"miou": float(tags["test_miou"]), "iou": iou}
            if "test_accuracy" in tags:
                scores["accuracy"] = float(tags["test_accuracy"])
            source = "registry tags"
        elif eval_tag(data_version, split_hash) in tags:
            scores = json.loads(tags[eval_tag(data_version, split_hash)])
            source = REEVALUATED
        else:
            return None
    except (ValueError, TypeError, KeyError):
        return None  # hand-edited or foreign tags: evaluate instead of trusting them
    return {**scores, "data_version": data_version, "split_hash": split_hash, "version": str(mv.version),
            "source": source}


def cache_evaluation(client: MlflowClient, mv: ModelVersion, metrics: Mapping[str, Any]) -> None:
    keep = {k: metrics[k] for k in ("miou", "accuracy", "iou") if k in metrics}
    key = eval_tag(str(metrics["data_version"]), str(metrics["split_hash"]))
    client.set_model_version_tag(mv.name, mv.version, key, json.dumps(keep, sort_keys=True))


def load_check(name: str, version: str) -> Check:
    """Load `models:/<name>/<version>` through pyfunc and predict on a (1, 40, 64, 64) array; the
    output must be finite probabilities of shape (1, 10, 64, 64) that sum to 1 per pixel."""
    uri = f"models:/{name}/{version}"
    what = "loads and predicts"
    try:
        model = mlflow.pyfunc.load_model(uri)
        x = np.full(CHECK_SHAPE, 1000.0, dtype=np.float32)
        x += np.linspace(0, 2000, CHECK_SHAPE[-1], dtype=np.float32)  # some spatial structure
        y = np.asarray(model.predict(x))
    except Exception as exc:  # noqa: BLE001 - any failure refuses the candidate
        first = " ".join(str(exc).split())[:300] or type(exc).__name__
        return Check(what, None, None, False, f"{uri} does not load and predict: {type(exc).__name__}: {first}")
    want = (CHECK_SHAPE[0], NUM_CLASSES, *CHECK_SHAPE[2:])
    if y.shape != want:
        return Check(what, None, None, False, f"{uri} predicts shape {y.shape}, expected {want}")
    if not np.isfinite(y).all():
        return Check(what, None, None, False, f"{uri} predicts non-finite values")
    if y.min() < -1e-6 or y.max() > 1 + 1e-6 or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
        return Check(what, None, None, False, f"{uri} output is not class probabilities summing to 1")
    return Check(what, None, None, True)
