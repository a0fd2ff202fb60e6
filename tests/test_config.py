"""params.yaml is validated up front: a value that cannot work fails naming its key."""

from __future__ import annotations

import pytest

from conftest import REPO
from landcover.config import ConfigError, load_params
from landcover.promotion.gates import decide

P = REPO / "params.yaml"


def test_repo_params_load() -> None:
    p = load_params(P)
    assert p.train.arch and p.fuel.crosswalk_version and p.inference.window % 32 == 0


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"train.epochs": 0}, "train.epochs"),
        ({"train.no_such_key": 1}, "train.no_such_key"),
        ({"inference.window": 100}, "inference"),
        ({"inference.overlap": 64}, "inference"),
        ({"split.tile_fractions": {"train": 0.5, "val": 0.5, "test": 0.5}}, "split.tile_fractions"),
        ({"fuel.crosswalk": {i: 102 for i in range(0, 11)}}, "fuel.crosswalk"),
        ({"fuel.crosswalk": {**{i: 102 for i in range(1, 11)}, 6: 250}}, "fuel.crosswalk"),
        ({"train.epochs.x": 1}, "train.epochs.x"),
    ],
)
def test_bad_values_name_the_key(override: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(P, override)


def test_a_class_absent_from_the_test_split_is_named_as_such() -> None:
    p = load_params(P)
    names = ["Roads", "Urban", "Bare Surfaces", "Wetlands", "Water", "Grassland", "Agricultural",
             "Broadleaved Forest", "Coniferous Forest", "Shrubs"]
    metrics = {"miou": 0.8, "iou": {n: 0.8 for n in names} | {"Wetlands": 0.0}, "absent_classes": ["Wetlands"],
               "data_version": "d", "split_hash": "s"}
    decision = decide(metrics, None, p.promote)
    assert decision.alias == "challenger"
    assert any("no Wetlands pixels" in r for r in decision.reasons)
    no_floor = p.promote.model_copy(update={"min_class_iou": 0.0})
    assert decide(metrics, None, no_floor).alias == "champion"
