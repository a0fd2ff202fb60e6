"""Promote stage: gates (pure), model card, and promotion against a real MLflow store (SQLite).

Two tiny models are logged once per module (a working one and one that predicts NaN); each test
makes its own candidate runs and uses its own registered model name, so registry states are
independent. Test metrics are written by hand: nothing is trained or evaluated here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from landcover.classes import CLASS_NAMES
from landcover.cli import main as cli_main
from landcover.config import MlflowParams, Params, PromoteParams
from landcover.errors import LandcoverError
from landcover.lineage import file_hash
from landcover.model.bundle import BundleMeta, ModelBundle
from landcover.model.network import build_network
from landcover.model.pyfunc import log_bundle_model
from landcover.promotion.gates import decide
from landcover.promotion.model_card import MAX_CHARS, build_model_card
from landcover.promotion.stage import run_promote

REPO = Path(__file__).resolve().parents[1]
GATES = PromoteParams(min_miou=0.30, min_class_iou=0.05, margin=0.005)
EXPERIMENT = "promotion-tests"
# the deliberately broken model divides by a zero std
pytestmark = pytest.mark.filterwarnings("ignore:(invalid value|divide by zero) encountered:RuntimeWarning")


def scores(miou: float, class_iou: float = 0.5, split_hash: str = "split-a", data_version: str = "data-1",
           **overrides) -> dict:
    """A metrics dict shaped like metrics/evaluate.json."""
    named = {n: class_iou for n in CLASS_NAMES}
    m = {
        "miou": miou, "accuracy": 0.8, "iou": dict(named), "precision": dict(named), "recall": dict(named),
        "f1": dict(named), "per_city": {"c1": miou - 0.05, "c2": miou + 0.05, "c3": miou},
        "per_zone": {"Atlantic": miou, "Mediterranean": miou - 0.1}, "pixels": 123456, "tiles": 4,
        "missing_season": {"spring": miou - 0.01, "summer": miou - 0.02, "autumn": miou - 0.01,
                           "winter": miou - 0.08},
        "split_hash": split_hash, "data_version": data_version,
    }
    m.update(overrides)
    return m


# ---------------------------------------------------------------- gates (pure)
def test_first_passing_candidate_is_promoted() -> None:
    d = decide(scores(0.6), None, GATES)
    assert (d.promote, d.alias, d.reasons) == (True, "champion", [])


def test_floors_refuse_with_reasons() -> None:
    low = scores(0.2)
    low["iou"]["Wetlands"] = 0.01
    d = decide(low, None, GATES)
    assert (d.promote, d.alias) == (False, "challenger")
    assert any("test mIoU 0.2000 is below the floor 0.3000" in r for r in d.reasons)
    assert any("IoU of Wetlands 0.0100 is below the floor 0.0500" in r for r in d.reasons)
    assert len(d.reasons) == 2


def test_missing_or_undefined_class_fails() -> None:
    m = scores(0.6)
    del m["iou"]["Roads"]
    m["iou"]["Water"] = float("nan")
    d = decide(m, None, GATES)
    assert not d.promote
    assert {r.split(" is ")[0] for r in d.reasons} == {"IoU of Roads", "IoU of Water"}


def test_value_on_the_floor_passes() -> None:
    assert decide(scores(0.30, class_iou=0.05), None, GATES).promote


def test_margin_against_champion() -> None:
    champ = scores(0.50) | {"version": "3"}
    assert decide(scores(0.505), champ, GATES).promote  # exactly the margin
    d = decide(scores(0.504), champ, GATES)
    assert not d.promote and "does not beat champion version 3 (0.5000) by the margin 0.0050" in d.reasons[0]
    assert not decide(scores(0.50), champ, PromoteParams(margin=0.0)).promote  # a tie never wins


def test_champion_from_another_split_cannot_be_compared() -> None:
    d = decide(scores(0.9), scores(0.1, split_hash="split-b"), GATES)
    assert not d.promote and "another test split" in d.reasons[0]


def test_model_card_is_complete_and_fits() -> None:
    d = decide(scores(0.504), scores(0.5) | {"version": "1"}, GATES)
    many = scores(0.504, per_city={f"city{i:03d}": 0.5 for i in range(201)})
    card = build_model_card("lc", "2", many, d, d.alias, GATES, {"run_id": "r1", "git_commit": "abc"},
                            scores(0.5) | {"version": "1", "source": "registry tags"})
    for heading in ("## Data", "## Test metrics", "## Per-class test scores", "## Per climate zone",
                    "## Robustness to a missing season", "## Promotion decision", "## Known limits"):
        assert heading in card
    assert "| Bare Surfaces | 0.5000 |" in card and "champion v1" in card
    assert "does not beat champion version 1" in card
    assert "winter (-0.0800)" in card  # the season whose loss matters is named as a limit
    assert len(card) <= MAX_CHARS
    assert card == build_model_card("lc", "2", many, d, d.alias, GATES, {"run_id": "r1", "git_commit": "abc"},
                                    scores(0.5) | {"version": "1", "source": "registry tags"})


# ---------------------------------------------------------------- registry (real MLflow store)
def _log_bundle(directory: Path, std: float) -> str:
    meta = BundleMeta("Unet", "resnet18", 3, {"mean": [0.1] * 40, "std": [std] * 40},
                      {c: 91 for c in range(1, 11)}, "test")
    ModelBundle(build_network("Unet", "resnet18", 3).eval(), meta).save(directory)
    with mlflow.start_run(run_name=directory.name):
        return log_bundle_model(directory).model_uri


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A SQLite tracking store with two logged models: 'good' and 'nan' (predicts NaN)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        exp_id = MlflowClient().create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
        mlflow.set_experiment(experiment_id=exp_id)
        models = {"good": _log_bundle(root / "good", 0.05), "nan": _log_bundle(root / "nan", 0.0)}
        yield {"uri": uri, "experiment_id": exp_id, "models": models}
    mlflow.set_tracking_uri(previous)


@pytest.fixture()
def ctx(store, params: Params, tmp_path: Path):
    """Params with a fresh model name for this test, and a helper making candidates."""
    name = f"lc-{uuid.uuid4().hex[:8]}"
    p = params.model_copy(update={
        "mlflow": MlflowParams(tracking_uri=store["uri"], experiment=EXPERIMENT, model_name=name),
        "promote": GATES,
    })
    client = MlflowClient(store["uri"])

    def candidate(metrics: dict, model: str = "good") -> tuple[Path, Path]:
        run = client.create_run(store["experiment_id"], tags={
            "git_commit": "0123abc", "data_version": metrics["data_version"], "split_hash": metrics["split_hash"],
            "params_hash": "p-hash"})
        run_id = run.info.run_id
        client.set_terminated(run_id, "FINISHED")
        folder = tmp_path / run_id
        folder.mkdir()
        model_uri = store["models"][model]
        (folder / "run.json").write_text(json.dumps({"run_id": run_id, "model_uri": model_uri}))
        (folder / "evaluate.json").write_text(json.dumps({**metrics, "run_id": run_id, "model_uri": model_uri}))
        return folder / "run.json", folder / "evaluate.json"

    def promote(files: tuple[Path, Path], **kw):
        return run_promote(p, files[0], files[1], out=tmp_path / "promotion.json", **kw)

    return type("Ctx", (), {"p": p, "name": name, "client": client, "candidate": staticmethod(candidate),
                            "promote": staticmethod(promote), "tmp": tmp_path})


def _champion(ctx) -> str | None:
    aliases = ctx.client.get_registered_model(ctx.name).aliases
    return str(aliases["champion"]) if "champion" in aliases else None


def test_first_passing_model_becomes_champion_and_loads(ctx) -> None:
    r = ctx.promote(ctx.candidate(scores(0.6)))
    assert (r.version, r.alias, r.promoted, r.created) == ("1", "champion", True, True)
    mv = ctx.client.get_model_version(ctx.name, "1")
    assert mv.tags["test_miou"] == "0.6000" and mv.tags["test_iou_Bare_Surfaces"] == "0.5000"
    for key in ("git_commit", "params_hash", "data_version", "split_hash", "candidate_run_id"):
        assert mv.tags[key]
    assert mv.tags["promotion_decision"] == "champion" and mv.tags["promotion_reasons"] == "none"
    assert "## Per-class test scores" in mv.description and "Promoted to `champion`" in mv.description
    record = json.loads(r.out.read_text())
    assert (record["version"], record["alias"], record["reasons"]) == ("1", "champion", [])
    y = mlflow.pyfunc.load_model(f"models:/{ctx.name}@champion").predict(
        np.full((1, 40, 64, 64), 1500.0, np.float32))
    assert y.shape == (1, 10, 64, 64) and np.allclose(y.sum(1), 1.0, atol=1e-4)


def test_worse_candidate_becomes_challenger_champion_unchanged(ctx) -> None:
    ctx.promote(ctx.candidate(scores(0.6)))
    r = ctx.promote(ctx.candidate(scores(0.603)))  # better, but by less than the margin
    assert (r.version, r.alias, r.champion_after) == ("2", "challenger", "1")
    assert _champion(ctx) == "1"
    assert str(ctx.client.get_model_version_by_alias(ctx.name, "challenger").version) == "2"
    mv = ctx.client.get_model_version(ctx.name, "2")
    assert "does not beat champion version 1 (0.6000) by the margin" in mv.tags["promotion_reasons"]
    assert mv.tags["promotion_reasons"] in mv.description.replace("\n- ", "; ")
    assert mv.tags["compared_with"] == "version 1 (test mIoU 0.6000)"


def test_better_candidate_takes_the_alias(ctx) -> None:
    ctx.promote(ctx.candidate(scores(0.6)))
    ctx.promote(ctx.candidate(scores(0.55)))  # challenger
    r = ctx.promote(ctx.candidate(scores(0.65)))
    assert (r.version, r.alias, r.champion_before, r.champion_after) == ("3", "champion", "1", "3")
    aliases = ctx.client.get_registered_model(ctx.name).aliases
    assert aliases == {"champion": 3, "challenger": 2}
    assert ctx.client.get_model_version(ctx.name, "3").tags["previous_champion"] == "1"
    assert ctx.client.get_model_version(ctx.name, "1").tags["superseded_by"] == "3"


def test_per_class_floor_refuses_with_reason(ctx) -> None:
    m = scores(0.7)
    m["iou"]["Roads"] = 0.02
    r = ctx.promote(ctx.candidate(m))
    assert (r.alias, r.promoted) == ("challenger", False)
    assert r.decision.reasons == ["IoU of Roads 0.0200 is below the floor 0.0500"]
    assert _champion(ctx) is None
    mv = ctx.client.get_model_version(ctx.name, r.version)
    assert mv.tags["promotion_reasons"] == "IoU of Roads 0.0200 is below the floor 0.0500"
    assert "IoU of Roads 0.0200 is below the floor" in mv.description and "| Roads | 0.0200 |" in mv.description
    assert json.loads(r.out.read_text())["reasons"] == r.decision.reasons


def test_rerun_is_idempotent(ctx) -> None:
    first = ctx.candidate(scores(0.6))
    ctx.promote(first)
    second = ctx.candidate(scores(0.62))
    a = ctx.promote(second)
    record_a = a.out.read_text()
    card_a = ctx.client.get_model_version(ctx.name, a.version).description
    b = ctx.promote(second)
    assert (a.version, a.created, b.version, b.created) == ("2", True, "2", False)
    assert b.out.read_text() == record_a and b.alias == "champion"
    assert ctx.client.get_model_version(ctx.name, "2").description == card_a
    assert len(ctx.client.search_model_versions(f"name = '{ctx.name}'")) == 2
    ctx.promote(first)  # the old champion again: stays a non-champion, no new version
    assert _champion(ctx) == "2"
    assert len(ctx.client.search_model_versions(f"name = '{ctx.name}'")) == 2


def test_champion_evaluated_on_another_split_is_re_evaluated_once(ctx) -> None:
    ctx.promote(ctx.candidate(scores(0.6, split_hash="old-split")))
    split = ctx.tmp / "split.csv"
    split.write_text("city_id,tile_id,split\nc1,t1,test\n")
    new = file_hash(split)
    calls: list[str] = []

    def fake_evaluate(p, data_root, split_file, model_uri, out_dir=None, metrics_path=None, log_to_run=None):
        calls.append(model_uri)
        assert Path(split_file) == split and metrics_path is None and log_to_run is None
        return type("R", (), {"metrics": scores(0.64, split_hash=new, model_uri=model_uri)})

    r = ctx.promote(ctx.candidate(scores(0.642, split_hash=new)), evaluate_fn=fake_evaluate,
                    data_root=ctx.tmp, split_file=split)
    assert calls == [f"models:/{ctx.name}/1"]
    assert r.alias == "challenger" and "champion version 1 (0.6400)" in r.decision.reasons[0]
    r2 = ctx.promote(ctx.candidate(scores(0.70, split_hash=new)), evaluate_fn=fake_evaluate,
                     data_root=ctx.tmp, split_file=split)
    assert calls == [f"models:/{ctx.name}/1"]  # cached on the champion version
    assert (r2.alias, _champion(ctx)) == ("champion", "3")


def test_stale_split_refuses_to_compare(ctx) -> None:
    ctx.promote(ctx.candidate(scores(0.6, split_hash="old-split")))
    split = ctx.tmp / "split.csv"
    split.write_text("city_id,tile_id,split\nc1,t1,test\n")
    with pytest.raises(LandcoverError, match="run `landcover evaluate` again"):
        ctx.promote(ctx.candidate(scores(0.7, split_hash="not-this-file")), split_file=split,
                    evaluate_fn=lambda *a, **k: pytest.fail("must not evaluate"))


def test_model_that_does_not_predict_probabilities_is_refused(ctx) -> None:
    r = ctx.promote(ctx.candidate(scores(0.9), model="nan"))
    assert r.alias == "challenger" and _champion(ctx) is None
    assert any("non-finite" in reason for reason in r.decision.reasons)


def test_metrics_of_another_model_are_an_error(ctx) -> None:
    run_json, metrics = ctx.candidate(scores(0.6))
    data = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**data, "run_id": "someone-else"}))
    with pytest.raises(LandcoverError, match="not the candidate"):
        ctx.promote((run_json, metrics))


def test_unfinished_training_run_is_an_error(ctx) -> None:
    run_json, metrics = ctx.candidate(scores(0.6))
    run_id = json.loads(run_json.read_text())["run_id"]
    run_json.write_text(json.dumps({"run_id": run_id, "status": "running"}))
    with pytest.raises(LandcoverError, match="has not finished"):
        ctx.promote((run_json, metrics))


def test_cli_exits_zero_for_challenger_and_non_zero_for_errors(ctx, capsys) -> None:
    m = scores(0.7)
    m["iou"]["Shrubs"] = 0.0
    run_json, metrics = ctx.candidate(m)
    base = ["--params", str(REPO / "params.yaml"), "--set", f"mlflow.model_name={ctx.name}",
            "--set", f"mlflow.experiment={EXPERIMENT}", "promote"]
    out = ctx.tmp / "cli-promotion.json"
    assert cli_main([*base, "--run", str(run_json), "--metrics", str(metrics), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "alias: challenger" in printed and "IoU of Shrubs 0.0000 is below the floor" in printed
    assert json.loads(out.read_text())["alias"] == "challenger"
    assert cli_main([*base, "--run", str(ctx.tmp / "missing.json"), "--metrics", str(metrics)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no trained candidate" in err[0]
