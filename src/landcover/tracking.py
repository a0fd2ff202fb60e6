"""MLflow connection: fail fast with a clear message when the tracking store is unreachable."""

from __future__ import annotations

import os

import mlflow

from landcover.errors import LandcoverError


def connect(tracking_uri: str, experiment: str) -> str:
    """Set the tracking URI and experiment; returns the experiment id. Raises LandcoverError
    naming the URI when the store cannot be reached, so nothing trains without logging."""
    if tracking_uri.startswith("http"):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        exp = mlflow.set_experiment(experiment)
    except Exception as exc:  # noqa: BLE001 - any failure here means "unreachable"
        raise LandcoverError(f"MLflow tracking store {tracking_uri} unreachable: {exc}") from exc
    return exp.experiment_id
