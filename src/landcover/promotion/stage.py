"""The promote stage: one implementation behind `landcover promote`, the DVC stage and the flow.

1. Read the candidate (`models/candidate/run.json`) and its test metrics (`metrics/evaluate.json`)
   and check they belong together.
2. Register it under `params.mlflow.model_name`, or find the version registered earlier for the
   same training run (re-runs never create a second version), and tag it with lineage and metrics.
3. Get the current champion's scores on the same test split: from its tags when it was evaluated
   on this data version and split hash, else by evaluating it now (result cached in a tag).
4. Check the candidate loads through pyfunc and predicts; apply the gates (`gates.decide`).
5. Write the decision into tags and the model card (description), move the alias (`champion`,
   or `challenger`), confirm `models:/<name>@champion` resolves, write `metrics/promotion.json`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from landcover.candidate import Candidate, candidate_path, read_candidate
from landcover.config import Params
from landcover.errors import LandcoverError
from landcover.io_utils import atomic_write_json, read_json_record
from landcover.lineage import file_hash
from landcover.outputs import side_output
from landcover.promotion import registry as reg
from landcover.promotion.gates import Decision, decide
from landcover.promotion.model_card import build_model_card
from landcover.tracking import connect

log = logging.getLogger(__name__)
EvaluateFn = Callable[..., Any]  # run_evaluation's signature; returns an object with .metrics (or a dict)


@dataclass
class PromotionResult:
    name: str
    version: str
    alias: str                    # the alias the version holds after promotion
    decision: Decision
    created: bool                 # a new model version was registered by this call
    champion_before: str | None   # champion version before this call
    champion_after: str | None
    record: dict[str, Any]        # what metrics/promotion.json holds
    out: Path

    @property
    def promoted(self) -> bool:
        return self.alias == reg.CHAMPION


def read_metrics(path: Path, candidate: Candidate) -> dict[str, Any]:
    path = Path(path)
    metrics = read_json_record(path, "no test metrics (run `landcover evaluate` first)")
    if "miou" not in metrics or "iou" not in metrics:
        raise LandcoverError(f"{path}: lacks 'miou' or 'iou'; not an evaluation result")
    if metrics.get("model_uri") not in (None, "", candidate.model_uri) or (
            metrics.get("run_id") not in (None, "", candidate.run_id)):
        raise LandcoverError(
            f"{path}: evaluates {metrics.get('model_uri')} (run {metrics.get('run_id')}), not the candidate "
            f"{candidate.model_uri} (run {candidate.run_id}); run `landcover evaluate` again")
    return metrics


def _not_wired(*_args, **_kwargs) -> Any:
    raise LandcoverError("the champion has no scores on this split yet and no evaluation was handed to "
                         "run_promote (evaluate_fn); `landcover promote` hands it the evaluate stage")


def champion_scores(client: MlflowClient, p: Params, champion_version: str, cand_metrics: dict[str, Any],
                    evaluate_fn: EvaluateFn, data_root: Path, split_file: Path) -> dict[str, Any]:
    """The champion's scores on the candidate's test split version: from tags, or evaluated now."""
    name = p.mlflow.model_name
    try:
        mv = client.get_model_version(name, champion_version)
    except MlflowException as exc:
        raise LandcoverError(f"champion version {champion_version} of {name}: {exc.message.splitlines()[0]}") from exc
    dv, sh = str(cand_metrics.get("data_version", "")), str(cand_metrics.get("split_hash", ""))
    cached = reg.metrics_from_tags(mv, dv, sh)
    if cached is not None:
        return cached
    current = file_hash(split_file)
    if current != sh:
        raise LandcoverError(
            f"the candidate's test metrics are for split hash {sh} but {split_file} is {current}: the "
            f"champion (version {champion_version}) must be evaluated on the candidate's test split; run "
            "`landcover evaluate` again")
    uri = f"models:/{name}/{champion_version}"
    log.info("champion version %s was not evaluated on split %s / data %s: evaluating it now", champion_version, sh, dv)
    with tempfile.TemporaryDirectory(prefix="champion-eval-") as tmp:
        result = evaluate_fn(p, Path(data_root), Path(split_file), uri, out_dir=Path(tmp), metrics_path=None,
                             log_to_run=None)
    metrics = dict(getattr(result, "metrics", result))
    if (str(metrics.get("data_version")), str(metrics.get("split_hash"))) != (dv, sh):
        raise LandcoverError(
            f"champion re-evaluation ran on data {metrics.get('data_version')} / split {metrics.get('split_hash')}, "
            f"the candidate's metrics on data {dv} / split {sh}; run `landcover evaluate` again")
    reg.cache_evaluation(client, mv, metrics)
    return {**{k: metrics[k] for k in ("miou", "accuracy", "iou") if k in metrics}, "data_version": dv,
            "split_hash": sh, "version": str(champion_version),
            "source": reg.REEVALUATED}


def _run_tags(client: MlflowClient, run_id: str) -> dict[str, str]:
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise LandcoverError(f"training run {run_id} not found in {client.tracking_uri}: "
                             f"{exc.message.splitlines()[0]}") from exc
    return dict(run.data.tags)


def _move_aliases(client: MlflowClient, name: str, version: str, alias: str, champion_before: str | None) -> None:
    if alias == reg.CHAMPION:
        if champion_before != version:
            client.set_registered_model_alias(name, reg.CHAMPION, version)
        if reg.alias_version(client, name, reg.CHALLENGER) == version:
            client.delete_registered_model_alias(name, reg.CHALLENGER)
    elif reg.alias_version(client, name, reg.CHALLENGER) != version:
        client.set_registered_model_alias(name, reg.CHALLENGER, version)


def run_promote(p: Params, candidate_run_json: Path | None = None, metrics_path: Path | None = None,
                evaluate_fn: EvaluateFn | None = None, data_root: Path | None = None, split_file: Path | None = None,
                out: Path | None = None) -> PromotionResult:
    """Register the candidate, apply the gates, move the alias. Defaults: `<train.out>/run.json`,
    `evaluate.metrics`, `data.root`, `split.out`; the decision record goes beside explicitly given
    metrics (`promotion.json`), else to `promote.out`. `evaluate_fn` scores the champion when its
    scores on the current split are not recorded yet: the evaluate stage's run_evaluation, handed
    in by the caller (promotion does not import another stage; docs/architecture.md)."""
    candidate_run_json = candidate_path(p.train.out, candidate_run_json)
    out = side_output(out, metrics_path, lambda m: m.with_name("promotion.json"), p.promote.out)
    metrics_path = Path(metrics_path or p.evaluate.metrics)
    cand = read_candidate(candidate_run_json)
    metrics = read_metrics(metrics_path, cand)

    connect(p.tracking_uri(), p.mlflow.experiment)
    client = MlflowClient()
    name = p.mlflow.model_name
    run_tags = _run_tags(client, cand.run_id)
    lineage = {"run_id": cand.run_id, "git_commit": run_tags.get("git_commit", "unknown"),
               "params_hash": run_tags.get("params_hash", "unknown"),
               "train_split_hash": run_tags.get("split_hash", "unknown"),
               "encoder_weights": run_tags.get("encoder_weights", "random"),
               "fine_tuning": run_tags.get("fine_tuning", "n/a")}

    mv, created = reg.register_version(client, name, cand.run_id, cand.model_uri)
    version = str(mv.version)
    reg.set_tags(client, mv, {"git_commit": lineage["git_commit"], "params_hash": lineage["params_hash"],
                              **reg.metric_tags(metrics)})

    champion_before = reg.alias_version(client, name, reg.CHAMPION)
    # the version to beat: the champion, or (re-run after this version was promoted) the one it replaced
    baseline = champion_before if champion_before != version else mv.tags.get("previous_champion")
    champ = None
    if baseline is not None:
        champ = champion_scores(client, p, baseline, metrics, evaluate_fn or _not_wired,
                                Path(data_root or p.data.root), Path(split_file or p.split.out))
    decision = decide(metrics, champ, p.promote, extra_checks=[reg.load_check(name, version)])
    alias = decision.alias
    if champion_before == version and not decision.promote:
        # promotion never demotes the champion (that would leave batch inference without a model)
        alias = reg.CHAMPION
        decision = decision.noted("already the champion: kept (promotion never demotes; move the alias to roll back)")

    mv = client.get_model_version(name, version)
    reg.set_tags(client, mv, {
        "promotion_decision": alias,
        "promotion_reasons": "; ".join(decision.reasons) or "none",
        "compared_with": f"version {champ['version']} (test mIoU {float(champ['miou']):.4f})" if champ else "none",
    })
    card = build_model_card(name, version, metrics, decision, alias, p.promote, lineage, champ)
    if mv.description != card:
        client.update_model_version(name, version, description=card)
    if champion_before is not None and champion_before != version and alias == reg.CHAMPION:
        # before the alias moves, so a re-run after a crash still knows which version it must beat
        reg.set_tags(client, client.get_model_version(name, version), {"previous_champion": champion_before})
    _move_aliases(client, name, version, alias, champion_before)
    if champion_before is not None and champion_before != version and alias == reg.CHAMPION:
        reg.set_tags(client, client.get_model_version(name, champion_before), {"superseded_by": version})

    champion_after = reg.alias_version(client, name, reg.CHAMPION)
    if alias == reg.CHAMPION and champion_after != version:
        raise LandcoverError(f"models:/{name}@champion resolves to version {champion_after}, expected {version}")

    record = {
        "model_name": name, "version": version, "alias": alias, "promoted": alias == reg.CHAMPION,
        "reasons": list(decision.reasons),
        "failed_checks": [c.name for c in decision.checks if not c.passed],
        "candidate": {"run_id": cand.run_id, "model_uri": cand.model_uri, "miou": metrics.get("miou"),
                      "data_version": metrics.get("data_version"), "split_hash": metrics.get("split_hash")},
        "champion": champion_after,
        "compared_with": ({"version": champ["version"], "miou": champ.get("miou"), "source": champ.get("source")}
                          if champ else None),
        "gates": p.promote.model_dump(mode="json"),
        "model_uri": f"models:/{name}/{version}",
    }
    atomic_write_json(out, record)
    return PromotionResult(name, version, alias, decision, created, champion_before, champion_after, record, out)
