"""The promotion gates (BRIEF section 5), as a pure function of metric dicts and params.

A candidate becomes `champion` only if every check passes:

- its test mIoU clears `promote.min_miou` (value >= floor);
- every one of the 10 per-class IoUs clears `promote.min_class_iou` (a class missing from the
  metrics, or with an undefined value, fails);
- when a champion exists: both were measured on the same test split (same data version and split
  hash) and the candidate's mIoU beats the champion's by at least `promote.margin` (and by more
  than nothing, so a tie never moves the alias even with a zero margin).

Otherwise it becomes `challenger`; `Decision.reasons` holds one sentence per failed check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from landcover.classes import CLASS_NAMES
from landcover.config import PromoteParams

Alias = Literal["champion", "challenger"]
EPS = 1e-9  # metrics are rounded to 4 decimals; this keeps 0.355 - 0.35 >= 0.005 true


@dataclass(frozen=True)
class Check:
    """One gate: what was measured, against which threshold, and whether it passed."""

    name: str
    value: float | None
    threshold: float | None
    passed: bool
    reason: str = ""  # why it failed (empty when passed)


@dataclass(frozen=True)
class Decision:
    promote: bool
    alias: Alias
    reasons: list[str] = field(default_factory=list)
    checks: tuple[Check, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "alias": self.alias,
            "reasons": list(self.reasons),
            "checks": [
                {"name": c.name, "value": c.value, "threshold": c.threshold, "passed": c.passed}
                for c in self.checks
            ],
        }

    def with_checks(self, extra: Sequence[Check]) -> Decision:
        """This decision with more checks appended (and re-derived from all of them)."""
        return _decision((*self.checks, *extra))

    def noted(self, note: str) -> Decision:
        """Same outcome, one more explanatory line in `reasons`."""
        return replace(self, reasons=[*self.reasons, note])


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _floor(name: str, value: Any, floor: float, label: str) -> Check:
    x = _number(value)
    if x is None:
        return Check(name, None, floor, False, f"{label} is missing or undefined")
    if x + EPS < floor:
        return Check(name, x, floor, False, f"{label} {x:.4f} is below the floor {floor:.4f}")
    return Check(name, x, floor, True)


def _split_of(metrics: Mapping[str, Any]) -> tuple[str, str]:
    return str(metrics.get("data_version", "")), str(metrics.get("split_hash", ""))


def _versus_champion(candidate: Mapping[str, Any], champion: Mapping[str, Any], margin: float) -> Check:
    cand_split, champ_split = _split_of(candidate), _split_of(champion)
    if cand_split != champ_split:
        return Check("beats champion", None, margin, False,
                     f"the champion's metrics come from another test split (data version "
                     f"{champ_split[0]}, split hash {champ_split[1]}; candidate: {cand_split[0]}, "
                     f"{cand_split[1]}), so they cannot be compared")
    cand, champ = _number(candidate.get("miou")), _number(champion.get("miou"))
    if cand is None or champ is None:
        return Check("beats champion", None, margin, False, "mIoU missing, cannot compare with the champion")
    delta = cand - champ
    who = f"champion version {champion['version']}" if champion.get("version") else "the champion"
    if delta <= EPS or delta + EPS < margin:
        return Check("beats champion", round(delta, 6), margin, False,
                     f"test mIoU {cand:.4f} does not beat {who} ({champ:.4f}) by the margin "
                     f"{margin:.4f} (difference {delta:+.4f})")
    return Check("beats champion", round(delta, 6), margin, True)


def _decision(checks: Sequence[Check]) -> Decision:
    reasons = [c.reason for c in checks if not c.passed]
    promote = not reasons
    return Decision(promote, "champion" if promote else "challenger", reasons, tuple(checks))


def decide(candidate_metrics: Mapping[str, Any], champion_metrics: Mapping[str, Any] | None,
           promote_params: PromoteParams, extra_checks: Sequence[Check] = ()) -> Decision:
    """Apply the gates. `champion_metrics` is None when there is no (other) champion; it must carry
    `miou`, `data_version` and `split_hash` (and optionally `version`) otherwise. `extra_checks`
    (for example the load-and-predict check) join the gates."""
    g = promote_params
    checks = [_floor("test mIoU", candidate_metrics.get("miou"), g.min_miou, "test mIoU")]
    iou = candidate_metrics.get("iou") or {}
    # a class with no test pixels has no IoU: with a positive floor that floor cannot be checked
    absent = set(candidate_metrics.get("absent_classes") or ()) if g.min_class_iou > 0 else set()
    checks += [
        Check(f"IoU {name}", None, g.min_class_iou, False,
              f"IoU of {name} is undefined: the test split has no {name} pixels, so its floor cannot be checked")
        if name in absent else _floor(f"IoU {name}", iou.get(name), g.min_class_iou, f"IoU of {name}")
        for name in CLASS_NAMES
    ]
    if g.max_ece is not None:  # the confidence layer must not over- or under-promise by more than this
        ece = _number(candidate_metrics.get("ece"))
        checks.append(Check("test ECE", ece, g.max_ece, False, "test ECE is missing (evaluated before calibration "
                                                               "existed?)") if ece is None else
                      Check("test ECE", ece, g.max_ece, ece <= g.max_ece + EPS,
                            f"test ECE {ece:.4f} is above the ceiling {g.max_ece:.4f}"))
    if champion_metrics is not None:
        checks.append(_versus_champion(candidate_metrics, champion_metrics, g.margin))
    checks += list(extra_checks)
    return _decision(checks)
