"""Training stage: smoke run with a tiny model, the logged MLflow model, bad params, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from conftest import REPO, TINY_TRAIN
from landcover.config import load_params
from landcover.errors import LandcoverError
from landcover.model.normalization import NormStats, normalize
from landcover.splitfile import read_split
from landcover.training import batch
from landcover.training.data import IGNORE_INDEX, CropSampler, TrainCrops, index_tiles, to_target
from landcover.training.sources import GeoTiffSource
from landcover.training.stage import run_train, trainer_settings


def test_fast_dev_run_logs_a_loadable_model(tiny_model, mlflow_store: str) -> None:
    run = mlflow.get_run(tiny_model.run_id)
    assert run.data.tags["data_version"] and run.data.tags["split_hash"] != "missing"
    assert run.data.params["arch"] == load_params(REPO / "params.yaml").train.arch and "git_commit" in run.data.tags
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(tiny_model.run_id, "figures")}
    assert {"figures/val_confusion_matrix.png", "figures/val_overlays.png"} <= artifacts
    model = mlflow.pyfunc.load_model(tiny_model.model_uri)
    x = np.random.default_rng(0).integers(1, 5000, (2, 40, 48, 40)).astype(np.float32)
    probs = model.predict(x)
    assert probs.shape == (2, 10, 48, 40)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    norm = NormStats.load(tiny_model.out_dir / "norm_stats.json")
    assert norm.mean.shape == (40,) and (norm.std > 0).all()


def test_norm_stats_use_training_split_only(tiny_model, tiny_dataset: Path, tiny_split: Path) -> None:
    from landcover.model.normalization import compute_norm_stats

    train = compute_norm_stats(read_split(tiny_split, tiny_dataset, "train"))
    test = compute_norm_stats(read_split(tiny_split, tiny_dataset, "test"))
    saved = NormStats.load(tiny_model.out_dir / "norm_stats.json")
    assert np.allclose(saved.mean, train.mean, atol=1e-6)
    assert not np.allclose(saved.mean, test.mean, atol=1e-6)


def test_crops_are_raw_windows_with_a_dropout_and_a_d4_draw(tiny_dataset: Path, tiny_split: Path) -> None:
    source = GeoTiffSource(read_split(tiny_split, tiny_dataset, "train"))
    infos = index_tiles(source, 32, (1, 3, 4))
    ds = TrainCrops(infos, source, 32, 8, rare_share=1.0, season_dropout=1.0)
    pixels, d4, drop = ds[0]
    assert pixels.shape == (32, 32, 41) and pixels.dtype == torch.uint16
    assert drop.tolist().count(True) == 3  # dropout never removes every season
    assert 0 <= int(d4[0]) < 4 and int(d4[1]) in (0, 1)
    assert torch.equal(ds[0].pixels, pixels) and not torch.equal(ds[(0, 12345)].pixels, pixels)  # seeded per crop
    x, y = batch.prepare(ds.__getitems__([0]), torch.full((40,), 0.1), torch.full((40,), 0.1))
    blank = [(x[0, s * 10 : (s + 1) * 10] == 0).all().item() for s in range(4)]
    assert blank == [bool(v) for v in drop.tolist()]
    assert x.shape == (1, 40, 32, 32) and set(np.unique(y.numpy())) <= set(range(10)) | {IGNORE_INDEX}


def test_rare_class_sampling_finds_rare_pixels(tiny_dataset: Path, tiny_split: Path) -> None:
    source = GeoTiffSource(read_split(tiny_split, tiny_dataset, "train"))
    infos = [i for i in index_tiles(source, 32, (1,)) if len(i.rare_rc)]
    assert infos, "no road pixels in the tiny training split"
    biased = TrainCrops(infos, source, 32, 16, rare_share=1.0, season_dropout=0.0, augment=False)
    uniform = TrainCrops(infos, source, 32, 16, rare_share=0.0, season_dropout=0.0, augment=False)
    share = lambda ds: np.mean([(ds[i].pixels[..., 40] == 1).float().mean().item() for i in range(len(ds))])  # noqa: E731
    assert share(biased) > share(uniform)


def test_to_target_ignores_unlabelled() -> None:
    t = to_target(np.array([[0, 1, 10, 11]], np.uint8))
    assert t.tolist() == [[IGNORE_INDEX, 0, 9, IGNORE_INDEX]]
    assert batch.to_target(torch.tensor([[0, 1, 10, 11]], dtype=torch.uint8)).tolist() == t.tolist()


def test_the_device_side_batch_equals_the_numpy_reference() -> None:
    """Dropout, normalisation, targets and D4 on the training device give what the old CPU loader
    gave: seasons zeroed, `normalize` (the inference function), then numpy rot90 and mirror."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 12000, (3, 16, 16, 41)).astype(np.uint16)
    pixels[..., 40] = rng.integers(0, 12, (3, 16, 16))
    pixels[1, :4, :4, :10] = 0  # nodata
    d4 = torch.tensor([[0, 0], [1, 1], [3, 0]])
    drop = torch.tensor([[True, False, False, False], [False, False, False, False], [False, True, False, True]])
    norm = NormStats(rng.uniform(0.05, 0.3, 40).astype(np.float32), rng.uniform(0.02, 0.2, 40).astype(np.float32))
    got_x, got_y = batch.prepare((torch.from_numpy(pixels), d4, drop), torch.from_numpy(norm.mean),
                                 torch.from_numpy(norm.std))
    for i, (k, flip) in enumerate(d4.tolist()):
        stack = np.moveaxis(pixels[i, ..., :40], -1, 0).copy()
        for s in np.flatnonzero(drop[i].numpy()):
            stack[s * 10:(s + 1) * 10] = 0
        want_x = np.rot90(normalize(stack, norm), k, axes=(1, 2))
        want_y = np.rot90(to_target(pixels[i, ..., 40].astype(np.uint8)), k)
        if flip:
            want_x, want_y = want_x[:, :, ::-1], want_y[:, ::-1]
        assert np.array_equal(got_x[i].numpy(), want_x)  # bit for bit
        assert np.array_equal(got_y[i].numpy(), want_y)


def test_crop_sampler_splits_an_epoch_between_ranks_without_repeats(monkeypatch) -> None:
    import landcover.training.data as data

    def shares(world: int, epoch: int) -> list[list[tuple[int, int]]]:
        out = []
        for rank in range(world):
            monkeypatch.setattr(data, "rank_and_world", lambda r=rank: (r, world))
            sampler = CropSampler(103, seed=5)
            sampler.set_epoch(epoch)
            out.append(list(sampler))
            assert len(sampler) == 103 // world
        return out

    two = shares(2, 0)
    assert len(two[0]) == len(two[1]) == 51  # equal shares: DDP ranks step together; the odd item waits
    assert not {i for i, _ in two[0]} & {i for i, _ in two[1]}
    assert shares(2, 0) == two  # deterministic per epoch
    assert shares(2, 1) != two  # and new each epoch
    one = dict(shares(1, 0)[0])
    assert all(one[i] == seed for share in two for i, seed in share)  # a crop's seed is (seed, epoch, index)
    monkeypatch.setattr(data, "rank_and_world", lambda: (1, 2))
    assert [i for i, _ in CropSampler(5, seed=5, shuffle=False)] == [1, 3]  # validation: every item once
    with pytest.raises(LandcoverError, match="1 crops cannot be shared by 2 ranks"):
        len(CropSampler(1, seed=5, shuffle=False))  # a rank without validation batches would hang the others


def test_last_checkpoint_keeps_the_resume_state_and_the_log_quiet(tmp_path: Path) -> None:
    """`LastCheckpoint` tells Lightning it saves everything (optimizer, loops, callbacks): left unset,
    Lightning logged "`weights_only` was not set, defaulting to `False`" at every epoch. The file
    still loads weights-only (torch's safe loader), as every load in the package does."""
    import logging

    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from landcover.training.callbacks import LastCheckpoint

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters())

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    lightning = logging.getLogger("pytorch_lightning")  # its own handler, or the root's: this sees both
    level = lightning.level
    lightning.addHandler(handler)
    lightning.setLevel(logging.INFO)  # the notice is INFO, as in the training log
    try:
        trainer = pl.Trainer(max_epochs=2, callbacks=[LastCheckpoint(tmp_path / "last.ckpt")], logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(Tiny(), DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2))
    finally:
        lightning.removeHandler(handler)
        lightning.setLevel(level)
    assert records, "nothing from Lightning's log reached the handler: the check below would be blind"
    assert not [r.getMessage() for r in records if "weights_only" in r.getMessage()]
    ckpt = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and {"state_dict", "optimizer_states", "loops", "callbacks"} <= ckpt.keys()
    assert ckpt["optimizer_states"][0]["state"], "the optimizer's moments are what a resumed run continues from"


def test_trainer_settings_pick_precision_by_device() -> None:
    s = trainer_settings(load_params(REPO / "params.yaml"))
    assert s["accelerator"] == "auto"
    assert s["precision"] == ("bf16-mixed" if torch.cuda.is_available() else "32-true")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"train.encoder": "resnet9000"}, "train.encoder"),
        ({"train.arch": "NotANet"}, "train.arch"),
        ({"train.crop_size": 128}, "train.crop_size"),
    ],
)
def test_bad_params_fail_before_training(tiny_dataset, tiny_split, tiny_store, mlflow_store, tmp_path, override,
                                         message):
    p = load_params(REPO / "params.yaml", {**TINY_TRAIN, **override})
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(LandcoverError, match=message.replace(".", r"\.")):
        run_train(p, tiny_dataset, tiny_split, tmp_path / "m", fast_dev_run=True, store=tiny_store)
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before


def test_empty_training_split_is_an_error(tiny_dataset, mlflow_store, tmp_path) -> None:
    split = tmp_path / "split.csv"
    split.write_text("city_id,tile_id,split\n")
    with pytest.raises(LandcoverError, match="training split is empty"):
        run_train(load_params(REPO / "params.yaml", {**TINY_TRAIN, "train.input": "geotiff"}), tiny_dataset, split,
                  tmp_path / "m")


def test_a_store_of_another_split_or_none_is_refused(tiny_dataset, tiny_split, tiny_store, mlflow_store,
                                                     tmp_path) -> None:
    p = load_params(REPO / "params.yaml", TINY_TRAIN)
    other = tmp_path / "split.csv"
    other.write_text(tiny_split.read_text().replace(",val", ",train", 1))
    with pytest.raises(LandcoverError, match="packed from another split"):
        run_train(p, tiny_dataset, other, tmp_path / "m", store=tiny_store)
    with pytest.raises(LandcoverError, match="run `landcover pack`"):
        run_train(p, tiny_dataset, tiny_split, tmp_path / "m", store=tmp_path / "nothing.zarr")


def test_unreachable_tracking_server_fails_fast(tiny_dataset, tiny_split, tiny_store, mlflow_store, tmp_path,
                                                monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on port 9
    start = time.perf_counter()
    try:
        with pytest.raises(LandcoverError, match="unreachable"):
            run_train(load_params(REPO / "params.yaml", TINY_TRAIN), tiny_dataset, tiny_split, tmp_path / "m",
                      store=tiny_store)
    finally:
        mlflow.set_tracking_uri(mlflow_store)
    assert time.perf_counter() - start < 60
    assert not (tmp_path / "m").exists()  # nothing trained without logging


@pytest.mark.slow
def test_killed_training_resumes_in_the_same_run(tiny_dataset, tiny_split, tiny_store, mlflow_store, tmp_path) -> None:
    """SIGKILL mid-run, start again: it continues from last.ckpt in the same MLflow run."""
    out = tmp_path / "candidate"
    ckpts = tmp_path / "candidate-checkpoints"
    sets = [f"--set={k}={v}" for k, v in {**TINY_TRAIN, "train.epochs": 6, "train.crops_per_tile": 16}.items()]
    cmd = [sys.executable, "-m", "landcover.cli", "--params", str(REPO / "params.yaml"), *sets,
           "train", "--data", str(tiny_dataset), "--split", str(tiny_split), "--store", str(tiny_store),
           "--out", str(out)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpts / "last.ckpt").exists():
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((ckpts / "resume.json").read_text())
    assert state["status"] == "running" and (ckpts / "last.ckpt").exists()
    killed_at = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]
    assert killed_at < 5, "training finished before it could be killed"

    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "`weights_only` was not set" not in done.stdout + done.stderr  # the per-epoch notice of issue 25
    assert json.loads((out / "run.json").read_text())["run_id"] == state["run_id"]
    history = mlflow.MlflowClient(mlflow_store).get_metric_history(state["run_id"], "val_miou")
    assert len(history) >= 6  # every epoch, before and after the kill, in the one run
    final = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]
    assert final == 5
    curves = (out / "train_curves.csv").read_text().splitlines()[1:]  # epochs before the kill are kept
    assert [int(row.split(",")[0]) for row in curves] == list(range(6))
