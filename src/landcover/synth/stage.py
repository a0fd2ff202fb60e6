"""Synth stage: one implementation behind `landcover synth`, `make data` and the demo. Writes the
synthetic dataset in the tile contract (or only the manifest shaped like the full dataset)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from landcover.config import Params, arg_or
from landcover.synth.generate import SynthOptions, generate
from landcover.synth.manifest import write_manifest

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SynthResult:
    out: Path
    cities: int
    tiles: int
    size: int | None  # None for a manifest

    def describe(self) -> str:
        if self.size is None:
            return f"manifest: {self.cities} cities, {self.tiles} tiles -> {self.out}"
        return f"synthetic dataset: {self.cities} cities, {self.tiles} tiles of {self.size} px -> {self.out}"


def run_synth(p: Params, out: Path, cities: int | None = None, tiles_per_city: int | None = None,
              size: int | None = None, seed: int | None = None, zones: tuple[str, ...] | None = None,
              progress: Progress | None = None) -> SynthResult:
    """The dataset under `out` (completed if partly there); unset options come from params `synth`."""
    s = p.synth
    options = SynthOptions(cities=arg_or(cities, s.cities), tiles_per_city=arg_or(tiles_per_city, s.tiles_per_city),
                           size=arg_or(size, s.size), seed=arg_or(seed, s.seed),
                           unlabelled_fraction=s.unlabelled_fraction, zones=zones)
    tiles = generate(Path(out), options, progress=progress)
    return SynthResult(Path(out), options.cities, len(tiles), options.size)


def run_synth_manifest(p: Params, out: Path, cities: int | None = None, tiles: int | None = None,
                       seed: int | None = None) -> SynthResult:
    """Only cities.csv and tiles.csv, shaped like the full dataset (749 cities, 5,401 tiles)."""
    s = p.synth
    n_cities, n_tiles = write_manifest(Path(out), arg_or(cities, s.manifest_cities), arg_or(tiles, s.manifest_tiles),
                                       arg_or(seed, s.seed))
    return SynthResult(Path(out), n_cities, n_tiles, None)
