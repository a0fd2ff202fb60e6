"""The demo configuration learns: trained on the demo-sized synthetic data with the default params,
the model clears a validation mIoU floor. (Measured 0.77; the floor leaves room for noise.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from landcover.config import load_params
from landcover.split.stage import run_split
from landcover.synth.generate import SynthOptions, generate
from landcover.training.stage import run_train

VAL_MIOU_FLOOR = 0.55


@pytest.mark.slow
def test_demo_configuration_reaches_the_floor(tmp_path: Path, mlflow_store: str, monkeypatch) -> None:
    p = load_params(REPO / "params.yaml")
    s = p.synth
    data = tmp_path / "data"
    generate(data, SynthOptions(s.cities, s.tiles_per_city, s.size, s.seed, s.unlabelled_fraction))
    run_split(data, tmp_path / "split.csv", tmp_path / "split.json", p)
    monkeypatch.chdir(tmp_path)  # metrics/ and plots/ of the run land here
    result = run_train(p, data, tmp_path / "split.csv", tmp_path / "candidate")
    assert result.metrics["val_miou"] >= VAL_MIOU_FLOOR, result.metrics
    assert (tmp_path / "plots" / "train_curves.csv").read_text().count("\n") >= 5
