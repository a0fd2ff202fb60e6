"""DDP on the CPU: two processes (gloo) launched by torchrun, exactly as the README launches N GPUs,
train from the packed store, are killed, and resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import psutil
import pytest
import torch

from conftest import REPO, TINY_TRAIN

BIN = Path(sys.executable).parent


def _shares(n: int, seed: int, epoch: int, world: int, monkeypatch) -> list[np.ndarray]:
    import landcover.training.data as data

    out = []
    for rank in range(world):
        monkeypatch.setattr(data, "rank_and_world", lambda r=rank: (r, world))
        sampler = data.CropSampler(n, seed)
        sampler.set_epoch(epoch)
        out.append(np.array([i for i, _ in sampler], dtype=np.int64))
    return out


@pytest.mark.slow
def test_two_process_ddp_trains_once_logs_once_and_resumes(tiny_dataset, tiny_split, tiny_store, mlflow_store,
                                                           tmp_path, monkeypatch) -> None:
    epochs, crops_per_tile = 4, 24
    sets = {**TINY_TRAIN, "train.epochs": epochs, "train.crops_per_tile": crops_per_tile,
            "train.accelerator": "cpu", "train.devices": 2, "train.strategy": "ddp"}
    out, ckpts = tmp_path / "candidate", tmp_path / "candidate-checkpoints"
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", str(BIN / "landcover"),
           "--params", str(REPO / "params.yaml"), *[f"--set={k}={v}" for k, v in sets.items()],
           "train", "--data", str(tiny_dataset), "--split", str(tiny_split), "--store", str(tiny_store),
           "--out", str(out)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "OMP_NUM_THREADS": "1"}
    runs_before = {r.info.run_id for r in mlflow.MlflowClient(mlflow_store).search_runs(["0", "1"])}
    experiment = mlflow.MlflowClient(mlflow_store).get_experiment_by_name("landcover").experiment_id

    # 1. killed (both ranks and the launcher) once the first epoch's checkpoint is on disk
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpts / "last.ckpt").exists() and proc.poll() is None:
        time.sleep(0.2)
    # torchrun starts each rank in its own session: kill the launcher and both ranks, as a node failure would
    for victim in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
        victim.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((ckpts / "resume.json").read_text())
    assert state["status"] == "running" and state["run_id"]
    killed_at = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]
    assert killed_at < epochs - 1, "training finished before it could be killed"

    # 2. the same command resumes in the same MLflow run and finishes
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    (tmp_path / "resumed.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained: MLflow run") == 1  # rank zero reports; rank one stays quiet
    assert json.loads((out / "run.json").read_text())["run_id"] == state["run_id"]
    client = mlflow.MlflowClient(mlflow_store)
    new_runs = {r.info.run_id for r in client.search_runs([experiment])} - runs_before
    assert new_runs == {state["run_id"]}  # one run, written by rank zero, kept across the kill
    history = client.get_metric_history(state["run_id"], "val_miou")
    assert len({m.step for m in history}) >= epochs
    assert len(client.search_logged_models([experiment], filter_string=f"source_run_id = '{state['run_id']}'")) == 1
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] == epochs - 1

    # 3. each rank drew its own half of every epoch, and both saw one synchronised validation mIoU
    reports = [json.loads((ckpts / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [e["epoch"] for e in reports[0]["epochs"]] == list(range(epochs))  # kept across the resume
    curves = (out / "train_curves.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in curves] == list(range(epochs))
    tiles = sum(1 for line in tiny_split.read_text().splitlines()[1:] if line.split(",")[2] == "train")
    for e0, e1 in zip(reports[0]["epochs"], reports[1]["epochs"], strict=True):
        assert e0["epoch"] == e1["epoch"] and e0["val_miou"] == e1["val_miou"] is not None
        shares = _shares(tiles * crops_per_tile, 1, e0["epoch"], 2, monkeypatch)
        assert not set(shares[0]) & set(shares[1]) and e0["crops"] == e1["crops"] == len(shares[0])
        assert [e0["digest"], e1["digest"]] == [hashlib.sha256(s.tobytes()).hexdigest()[:16] for s in shares]
    best = max(e["val_miou"] for e in reports[0]["epochs"])
    final = json.loads((out / "train_metrics.json").read_text())["val_miou"]
    assert abs(final - best) < 2e-3  # one process over every val crop = the two ranks' synced figure
