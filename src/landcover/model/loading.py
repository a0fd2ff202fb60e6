"""Load a model bundle from any MLflow model URI (`models:/<name>@champion`, `models:/<name>/3`,
`runs:/<id>/model`, `models:/m-<id>`), remembering which registered version it is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from landcover.errors import LandcoverError
from landcover.model.bundle import ModelBundle

ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


@dataclass(frozen=True)
class ModelRef:
    uri: str            # as requested
    resolved_uri: str   # pinned: models:/<name>/<version> when registered
    name: str
    version: str
    run_id: str


def resolve(uri: str, client: MlflowClient | None = None) -> ModelRef:
    client = client or MlflowClient()
    try:
        if m := ALIAS_URI.match(uri):
            mv = client.get_model_version_by_alias(m["name"], m["alias"])
        elif m := VERSION_URI.match(uri):
            mv = client.get_model_version(m["name"], m["version"])
        else:
            run_id = ""
            if uri.startswith("runs:/"):
                run_id = uri.split("/")[1]
            elif uri.startswith("models:/m-"):
                run_id = mlflow.get_logged_model(uri.split("/")[1]).source_run_id or ""
            return ModelRef(uri, uri, "unregistered", "", run_id)
    except mlflow.exceptions.MlflowException as exc:
        raise LandcoverError(f"model {uri}: not found in the registry at {mlflow.get_tracking_uri()} "
                             f"({exc.message.splitlines()[0]})") from exc
    return ModelRef(uri, f"models:/{mv.name}/{mv.version}", mv.name, str(mv.version), mv.run_id or "")


def load_bundle(uri: str, device: str = "cpu") -> tuple[ModelBundle, ModelRef]:
    ref = resolve(uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.resolved_uri))
    except mlflow.exceptions.MlflowException as exc:
        raise LandcoverError(f"model {uri}: cannot download: {exc.message.splitlines()[0]}") from exc
    bundle_dir = local / "artifacts" / "bundle"
    if not (bundle_dir / "weights.safetensors").is_file():
        raise LandcoverError(f"model {uri}: no landcover bundle inside (not a model logged by this project)")
    return ModelBundle.load(bundle_dir, device), ref
