"""What a per-tile stage's tiles came to: one outcome type for every stage that writes tiles
(mosaic, labels, predict, landscape), and the tally of a run (written, skipped, failed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from landcover.parallel import one_line


@dataclass(frozen=True)
class TileOutcome:
    """One tile: written, or skipped (already complete for the same request), with what the stage
    counts for it (`figures`) and anything a person should hear about. A failure is not an outcome:
    the tile's exception takes its place."""

    key: str
    status: Literal["written", "skipped"]
    figures: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @classmethod
    def skip(cls, key: str) -> TileOutcome:
        return cls(key, "skipped")

    @classmethod
    def wrote(cls, key: str, warnings: tuple[str, ...] = (), **figures: Any) -> TileOutcome:
        return cls(key, "written", figures, tuple(warnings))


@dataclass(kw_only=True)
class TileTally:
    """A run's tiles by outcome; the stages' result types extend it with their own totals."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def record(self, key: str, outcome: TileOutcome | Exception) -> TileOutcome | None:
        """Sort one tile in; the outcome when it was written (the caller adds its figures)."""
        if isinstance(outcome, Exception):
            self.failed[key] = one_line(outcome)
            return None
        if outcome.status == "skipped":
            self.skipped.append(key)
            return None
        self.written.append(key)
        return outcome

    def tally(self) -> dict[str, Any]:
        return {"tiles_written": len(self.written), "tiles_skipped": len(self.skipped),
                "tiles_failed": len(self.failed), "failed": self.failed}
