"""Shared fixtures: tiny synthetic datasets made by the real generator (seeded, cached per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from landcover.config import Params, load_params
from landcover.synth.generate import SynthOptions, generate

REPO = Path(__file__).resolve().parents[1]
LONGEST_FIRST = ("test_demo.py", "test_e2e.py", "test_ddp.py")  # minutes each: started first, run beside the rest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, so that with `-n` (pytest-xdist: `make test` runs two workers) they
    run beside the short ones instead of after them."""
    items.sort(key=lambda item: 0 if item.nodeid.split("::")[0].endswith(LONGEST_FIRST) else 1)


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 cities (one per climate zone) x 2 tiles x 64 px. Treat as read-only; copy to modify."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    generate(root, SynthOptions(cities=6, tiles_per_city=2, size=64, seed=3))
    return root


@pytest.fixture()
def dataset_copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the tiny dataset (for corrupting tiles)."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_dataset, dst)
    return dst


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real MLflow tracking store (SQLite) with artifacts in a temporary folder, used by every
    test that trains, evaluates, promotes or predicts."""
    import os

    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient(uri).create_experiment("landcover", artifact_location=(root / "mlruns").as_uri())
    yield uri
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


TINY_TRAIN = {
    "train.crop_size": 32, "train.crops_per_tile": 4, "train.batch_size": 8, "train.epochs": 2,
    "train.encoder_depth": 3, "train.val_crops_per_tile": 2, "inference.window": 64, "inference.overlap": 16,
}


@pytest.fixture(scope="session")
def tiny_split(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from landcover.split.stage import run_split

    out = tmp_path_factory.mktemp("split")
    run_split(load_params(REPO / "params.yaml"), tiny_dataset, out / "split.csv", out / "split.json")
    return out / "split.csv"


@pytest.fixture(scope="session")
def tiny_store(tiny_dataset: Path, tiny_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny split's train and val tiles packed (train.input: store, the default). Read-only."""
    from landcover.pack.stage import run_pack

    out = tmp_path_factory.mktemp("packed") / "store.zarr"
    run_pack(load_params(REPO / "params.yaml"), tiny_dataset, tiny_split, out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset: Path, tiny_split: Path, tiny_store: Path, mlflow_store: str,
               tmp_path_factory: pytest.TempPathFactory):
    """A smoke-trained (fast_dev_run) model logged to the test store: real files, random skill."""
    from landcover.training.stage import run_train

    p = load_params(REPO / "params.yaml", TINY_TRAIN)
    out = tmp_path_factory.mktemp("model") / "candidate"
    return run_train(p, tiny_dataset, tiny_split, out, fast_dev_run=True, store=tiny_store)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """A temporary Prefect server and database (started once: ~15 s), PREFECT_HOME in tmp."""
    import os

    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect_home")
    saved = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(home)  # the temporary server runs in a subprocess
    try:
        with temporary_settings({PREFECT_HOME: home}), prefect_test_harness():
            yield
    finally:
        if saved is None:
            os.environ.pop("PREFECT_HOME", None)
        else:
            os.environ["PREFECT_HOME"] = saved
