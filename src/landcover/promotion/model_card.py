"""The model version's description in the registry, written as a model card (markdown).

The registry's SQL stores keep a version description in a 5,000-character column, so the card is
built to fit: per-city figures are summarised (worst cities), never listed in full, and sections
are dropped from the end if a card still runs over. Content is a pure function of its inputs.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from landcover.classes import CLASS_NAMES
from landcover.config import PromoteParams
from landcover.promotion.gates import Decision

MAX_CHARS = 5000  # mlflow's model_versions.description is String(5000)
WEAK_IOU = 0.5    # classes under this IoU are named in "Known limits"
SEASON_DROP = 0.05  # an mIoU loss larger than this without one season is named as a limit


def _f(x: Any) -> str:
    try:
        return f"{float(x):.4f}"
    except (TypeError, ValueError):
        return "n/a"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]], numeric: bool = True) -> list[str]:
    rule = "|" + "|".join("---" if i == 0 or not numeric else "---:" for i in range(len(header))) + "|"
    out = ["| " + " | ".join(header) + " |", rule]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _data(m: Mapping[str, Any], lineage: Mapping[str, str]) -> list[str]:
    rows = [
        ("data version (data.dvc md5)", f"`{m.get('data_version', 'n/a')}`"),
        ("test split hash", f"`{m.get('split_hash', 'n/a')}`"),
        ("test tiles / labelled pixels", f"{m.get('tiles', 'n/a')} / {m.get('pixels', 'n/a')}"),
        ("training run", f"`{lineage.get('run_id', 'n/a')}`"),
        ("git commit", f"`{lineage.get('git_commit', 'n/a')}`"),
        ("train params hash", f"`{lineage.get('params_hash', 'n/a')}`"),
        ("encoder weights", f"{lineage.get('encoder_weights', 'n/a')}; {lineage.get('fine_tuning', 'n/a')}"),
        ("model", f"`{m.get('model_uri', 'n/a')}`"),
    ]
    return ["## Data", "", *_table(("item", "value"), rows, numeric=False)]


def _metrics(m: Mapping[str, Any], champ: Mapping[str, Any] | None) -> list[str]:
    keys = (("mIoU", "miou"), ("pixel accuracy", "accuracy"), ("calibration error (ECE)", "ece"),
            ("ECE before calibration", "ece_uncalibrated"))
    if champ is None:
        rows = [(label, _f(m.get(k))) for label, k in keys]
        return ["## Test metrics", "", *_table(("metric", "this version"), rows)]
    label = f"champion v{champ.get('version', '?')}"
    rows = [(name, _f(m.get(k)), _f(champ.get(k))) for name, k in keys]
    note = f"Champion figures: {champ.get('source', 'registry tags')}, same test split."
    return ["## Test metrics", "", *_table(("metric", "this version", label), rows), "", note]


def _per_class(m: Mapping[str, Any], champ: Mapping[str, Any] | None, floor: float) -> list[str]:
    iou, f1 = m.get("iou") or {}, m.get("f1") or {}
    prec, rec = m.get("precision") or {}, m.get("recall") or {}
    champ_iou = (champ or {}).get("iou") or {}
    rows = []
    for name in CLASS_NAMES:
        ok = "yes" if name in iou and float(iou[name]) + 1e-9 >= floor else "**no**"
        row = (name, _f(iou.get(name)), _f(f1.get(name)), _f(prec.get(name)), _f(rec.get(name)), ok)
        rows.append(row + ((_f(champ_iou.get(name)),) if champ_iou else ()))
    header = ("class", "IoU", "F1", "precision", "recall", f"IoU >= {floor:.2f}")
    header += ("champion IoU",) if champ_iou else ()
    return ["## Per-class test scores", "", *_table(header, rows)]


def _geography(m: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    zones = m.get("per_zone") or {}
    if zones:
        rows = [(z, _f(v)) for z, v in sorted(zones.items())]
        out += ["## Per climate zone (mIoU)", "", *_table(("zone", "mIoU"), rows)]
    cities = {c: float(v) for c, v in (m.get("per_city") or {}).items()}
    if cities:
        worst = sorted(cities.items(), key=lambda kv: (kv[1], kv[0]))[:3]
        out += ["", f"Per city: {len(cities)} test cities, mIoU median {statistics.median(cities.values()):.4f}, "
                f"worst " + ", ".join(f"{c} {v:.4f}" for c, v in worst) + "."]
    return out


def _points(m: Mapping[str, Any]) -> list[str]:
    pts = m.get("points") or {}
    if not pts.get("overall_accuracy"):
        return []
    o = pts["overall_accuracy"]

    def pm(e: Mapping[str, Any]) -> str:
        return "n/a" if e.get("value") is None else f"{e['value']:.3f} ± {e['ci95']:.3f}"

    rows = [(name, pm(u), pm(pts["producers_accuracy"].get(name, {}))) for name, u in pts["users_accuracy"].items()]
    return ["## Reference points", "",
            f"Overall accuracy **{pm(o)}** (95 % interval) at {pts['used']} reference points on the test tiles "
            f"(`{pts['file']}`; {pts['outside_test_tiles']} elsewhere, {pts['not_comparable']} not comparable), "
            "as a simple random sample; `landcover assess` gives design-based figures and areas for a whole map.", "",
            *_table(("class", "user's accuracy", "producer's accuracy"), rows, numeric=False)]


def _seasons(m: Mapping[str, Any]) -> list[str]:
    seasons = m.get("missing_season") or {}
    if not seasons:
        return []
    full = float(m.get("miou", 0.0))
    rows = [(s, _f(v), f"{float(v) - full:+.4f}") for s, v in seasons.items()]
    return ["## Robustness to a missing season", "",
            "mIoU when one seasonal mosaic is blanked to nodata (the model fills it from the others).", "",
            *_table(("season missing", "mIoU", "change"), rows)]


def _decision(decision: Decision, alias: str, g: PromoteParams, champion: Mapping[str, Any] | None) -> list[str]:
    head = ("Promoted to `champion`: it clears every gate." if decision.promote and alias == "champion"
            else f"Aliased `{alias}`." + (" Not promoted:" if decision.reasons else ""))
    out = ["## Promotion decision", "", head]
    out += [f"- {r}" for r in decision.reasons]
    out += ["", ("There was no champion to compare with. " if champion is None else "")
            + "This records the decision when the version was promoted; the registry's aliases are the "
            "current truth (a later version may have taken `champion` since)."]
    out += ["", (f"Gates: test mIoU >= {g.min_miou:.4f}; every class IoU >= {g.min_class_iou:.4f}; "
            f"beats the champion's test mIoU on the same test split by >= {g.margin:.4f}; loads via "
            "`mlflow.pyfunc.load_model` and predicts finite probabilities.")]
    return out


def _limits(m: Mapping[str, Any], lineage: Mapping[str, str]) -> list[str]:
    out = ["## Known limits", ""]
    iou = m.get("iou") or {}
    weak = sorted((float(v), n) for n, v in iou.items() if float(v) < WEAK_IOU)
    if weak:
        out.append("- Weak classes (IoU < 0.5): " + ", ".join(f"{n} {v:.4f}" for v, n in weak) + ".")
    full = float(m.get("miou", 0.0))
    drops = [(s, full - float(v)) for s, v in (m.get("missing_season") or {}).items()]
    big = [f"{s} (-{d:.4f})" for s, d in drops if d > SEASON_DROP]
    if big:
        out.append("- Sensitive to a missing season: " + ", ".join(big) + " mIoU.")
    zones = m.get("per_zone") or {}
    if len(zones) > 1:
        z, v = min(zones.items(), key=lambda kv: (float(kv[1]), kv[0]))
        out.append(f"- Weakest climate zone: {z} (mIoU {float(v):.4f}).")
    if lineage.get("train_split_hash") not in (None, "", m.get("split_hash")):
        out.append(f"- Trained with split file `{lineage['train_split_hash']}`, evaluated on "
                   f"`{m.get('split_hash')}`: the test cities may overlap its training cities.")
    if str(m.get("data_version")) in ("untracked", "unknown", ""):
        out.append("- The data version is not tracked by DVC: the test figures cannot be tied to a dataset.")
    out += [
        ("- Test figures come from the project's test cities; accuracy elsewhere in Europe, on other "
        "sensors or on real imagery when trained on the synthetic stand-in (BRIEF section 3) is unmeasured."),
        ("- Input: 10 Sentinel-2 bands x 4 seasonal mosaics, reflectance x 10000, 10 m pixels; other "
        "band orders, scales or resolutions give meaningless output."),
        ("- Fuel maps inherit every land cover error through the crosswalk; the crosswalk is not validated "
        "against field fuel plots."),
    ]
    return out


def build_model_card(name: str, version: str, metrics: Mapping[str, Any], decision: Decision, alias: str,
                     gates: PromoteParams, lineage: Mapping[str, str] | None = None,
                     champion: Mapping[str, Any] | None = None) -> str:
    """Markdown description for model version `version` of `name`; at most MAX_CHARS characters.

    `champion` (metrics of the champion it was compared with, with `version` and `source`) adds a
    comparison column; `lineage` carries run_id, git_commit, params_hash, train_split_hash."""
    lineage = lineage or {}
    title = [f"# {name} version {version}", "",
             ("Semantic segmentation of 10 land cover classes from multi-seasonal Sentinel-2 "
             "(10 bands x 4 seasons, 10 m). `mlflow.pyfunc.load_model(uri).predict(x)` takes "
             "(N, 40, H, W) reflectance x 10000 and returns (N, 10, H, W) class probabilities."), "",
             ("Quicklooks of test tiles (summer composite, reference, prediction, confidence): the source "
              "run's artifacts, `evaluation/quicklooks/`. The maps it makes open in a browser with "
              f"`landcover view <output folder>` (e.g. `landcover predict --model models:/{name}/{version} --input "
              "data --out outputs/batch`, then `landcover view outputs/batch`).")]
    sections = [title, _decision(decision, alias, gates, champion), _metrics(metrics, champion),
                _per_class(metrics, champion, gates.min_class_iou), _points(metrics), _data(metrics, lineage),
                _geography(metrics), _seasons(metrics), _limits(metrics, lineage)]
    sections = [s for s in sections if s]
    while True:
        text = "\n\n".join("\n".join(s) for s in sections) + "\n"
        if len(text) <= MAX_CHARS or len(sections) <= 3:
            break
        sections.pop(-2)  # drop the least essential section before "Known limits"
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 16] + "\n\n(truncated)\n"
    return text
