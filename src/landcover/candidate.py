"""The trained candidate record (`<train.out>/run.json`, a DVC output): which MLflow run trained the
model and where it was logged. Training writes it once the model is logged; evaluation and promotion
read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from landcover.errors import LandcoverError
from landcover.io_utils import atomic_write_json, read_json_record

RUN_FILE = "run.json"


@dataclass(frozen=True)
class Candidate:
    run_id: str
    model_uri: str


def candidate_path(train_out: Path | str, given: Path | str | None = None) -> Path:
    """The record a command reads: the one given, else `<train.out>/run.json`."""
    return Path(given) if given is not None else Path(train_out) / RUN_FILE


def write_candidate(folder: Path, run_id: str, model_uri: str) -> Path:
    path = Path(folder) / RUN_FILE
    atomic_write_json(path, {"run_id": run_id, "model_uri": model_uri})
    return path


def read_candidate(path: Path) -> Candidate:
    path = Path(path)
    state = read_json_record(path, "no trained candidate (run `landcover train` first)")
    # training writes run.json once the model is logged; an older layout also carried "status"
    if state.get("status", "finished") != "finished" or not state.get("model_uri") or not state.get("run_id"):
        raise LandcoverError(f"{path}: training run {state.get('run_id', '?')} has not finished "
                             f"(no model_uri, or status {state.get('status')!r}); nothing to promote")
    return Candidate(str(state["run_id"]), str(state["model_uri"]))
