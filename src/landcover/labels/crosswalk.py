"""Reference values to class codes: a params table, a preset, or (neither) the codes 1..10 as
they are. Values the crosswalk does not name become 0 (unlabelled) and are counted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from landcover.errors import LandcoverError
from landcover.labels.presets import PRESETS

UNMAPPED = 255  # marker while burning; becomes 0 once counted


def _key(value: object) -> str:
    """One spelling per value: 311, 311.0, "311" and np.int16(311) are the same reference code."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    if isinstance(value, np.integer):
        value = int(value)
    return str(value).strip()


@dataclass(frozen=True)
class Crosswalk:
    name: str
    table: dict[str, int] | None  # None: integer values 1..10 are class codes

    @classmethod
    def build(cls, preset: str | None, table: dict | None) -> Crosswalk:
        if table is not None:
            return cls("params labels.crosswalk", {_key(k): int(v) for k, v in table.items()})
        if preset is not None:
            if preset not in PRESETS:
                raise LandcoverError(f"unknown labels preset {preset!r}; known: {', '.join(PRESETS)}")
            return cls(f"preset {preset}", {_key(k): v for k, v in PRESETS[preset].items()})
        return cls("class codes 1..10", None)

    key = staticmethod(_key)

    def code(self, value: object) -> int:
        """Class code 0..10, or UNMAPPED."""
        key = _key(value)
        if self.table is None:
            return int(key) if key.isdigit() and 0 <= int(key) <= 10 else UNMAPPED  # 0: unlabelled
        return self.table.get(key, UNMAPPED)

    def codes(self, values: np.ndarray, nodata: object = None) -> tuple[np.ndarray, Counter]:
        """Map an array of reference values; returns (uint8 codes, Counter of unmapped values -> count).
        The reference's own nodata value becomes 0 and is not counted."""
        unique, inverse = np.unique(values, return_inverse=True)
        lut = np.array([0 if nodata is not None and u == nodata else self.code(u) for u in unique], dtype=np.uint8)
        out = lut[inverse].reshape(np.shape(values))
        counts = np.bincount(inverse.ravel(), minlength=len(unique))
        unmapped = Counter({_key(u): int(n) for u, n, c in zip(unique, counts, lut, strict=True)
                            if c == UNMAPPED and n})
        return out, unmapped

    def describe(self) -> dict:
        return {"name": self.name, "table": self.table}
