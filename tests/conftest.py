"""Shared fixtures: tiny synthetic datasets made by the real generator (seeded, cached per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from landcover.config import Params, load_params
from landcover.synth.generate import SynthOptions, generate

REPO = Path(__file__).resolve().parents[1]


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
