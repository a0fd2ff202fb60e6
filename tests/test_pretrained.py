"""Pretrained encoders, offline: state dicts fabricated in the exact layout torchgeo's Sentinel-2 weights
use (timm ResNet keys and shapes, 13 input channels, no classifier) are put in torch.hub's cache under
the file name of the weights' URL and load through torchgeo's own `get_state_dict`, the path a download
takes; the first convolution's filters are the source's at our bands' indices (by name); the
normalisation is the weights' metadata; the recipe freezes and unfreezes at the epoch set; mismatches
are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import timm
import torch

from conftest import REPO, TINY_TRAIN
from landcover.bands import BANDS
from landcover.config import load_params
from landcover.errors import LandcoverError
from landcover.model.network import build_network

S2_13 = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8a", "B9", "B10", "B11", "B12"]  # torchgeo's order
OURS_IN_13 = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12]  # B02 B03 B04 B05 B06 B07 B08 B8A B11 B12, by hand


def _cache_weights(name: str, model: str, home: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in torchgeo's layout at `$TORCH_HOME/hub/checkpoints/<the URL's file name>`."""
    import torchgeo.models

    enum, member = name.split(".")
    weights = getattr(getattr(torchgeo.models, enum), member)
    torch.manual_seed(seed)
    net = timm.create_model(model, in_chans=13, num_classes=0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    target = home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)
    return state


@pytest.fixture()
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # torch.hub reads TORCH_HOME when no dir was set
    return tmp_path / "torch"


def test_torchgeo_weights_load_from_the_cache_mapped_by_band_name(torch_home) -> None:
    from landcover.model.pretrained import channel_norm, resolve

    source = _cache_weights("ResNet18_Weights.SENTINEL2_ALL_MOCO", "resnet18", torch_home)
    weights = resolve("ResNet18_Weights.SENTINEL2_ALL_MOCO")
    assert [b.upper() for b in weights.bands] == [b.upper() for b in S2_13]
    assert weights.mean.tolist() == [0.0] * 13 and weights.std.tolist() == [10000.0] * 13  # Normalize(0, 10000)

    season_aware = build_network("SeasonAwareUnet", "resnet18", 4, "ResNet18_Weights.SENTINEL2_ALL_MOCO", weights)
    conv = season_aware.encoder.conv1.weight.detach()
    assert conv.shape[1] == 10
    for ours, theirs in enumerate(OURS_IN_13):
        assert torch.equal(conv[:, ours], source["conv1.weight"][:, theirs]), BANDS[ours]
    assert torch.equal(season_aware.encoder.layer3[1].conv2.weight, source["layer3.1.conv2.weight"])
    assert torch.equal(season_aware.encoder.bn1.running_var, source["bn1.running_var"])

    early = build_network("Unet", "resnet18", 4, "ResNet18_Weights.SENTINEL2_ALL_MOCO", weights)
    conv40 = early.encoder.conv1.weight.detach()
    assert conv40.shape[1] == 40
    for season in range(4):
        for ours, theirs in enumerate(OURS_IN_13):
            assert torch.allclose(conv40[:, season * 10 + ours], source["conv1.weight"][:, theirs] / 4)

    # the weights' normalisation: reflectance x 10000 / 10000, i.e. mean 0 and std 1 on reflectance
    mean, std = channel_norm(weights, np.full(40, 0.2, np.float32), np.full(40, 0.1, np.float32))
    assert mean.tolist() == [0.0] * 40 and std.tolist() == [1.0] * 40


def test_resnet50_dino_weights_and_what_does_not_fit(torch_home, tmp_path) -> None:
    from landcover.model.pretrained import resolve

    source = _cache_weights("ResNet50_Weights.SENTINEL2_ALL_DINO", "resnet50", torch_home, seed=1)
    weights = resolve("ResNet50_Weights.SENTINEL2_ALL_DINO")
    net = build_network("SeasonAwareUnet", "resnet50", 4, "ResNet50_Weights.SENTINEL2_ALL_DINO", weights)
    assert torch.equal(net.encoder.layer2[0].conv3.weight, source["layer2.0.conv3.weight"])
    with pytest.raises(LandcoverError, match="tensors fit .* they are for another encoder"):
        build_network("Unet", "resnet18", 4, "ResNet50_Weights.SENTINEL2_ALL_DINO", weights)
    # a state dict of other bands only: one line naming both band lists
    path = tmp_path / "radar.pt"
    torch.save(timm.create_model("resnet18", in_chans=3, num_classes=0).state_dict(), path)
    (tmp_path / "radar.pt.json").write_text(json.dumps({"bands": ["B01", "B09", "B10"], "mean": None, "std": None}))
    with pytest.raises(LandcoverError, match=r"none of our bands .* among the weights' bands \['B01', 'B09', 'B10'\]"):
        build_network("Unet", "resnet18", 4, str(path))
    with pytest.raises(LandcoverError, match="torchgeo has no weights ResNet18_Weights.NOTHING"):
        resolve("ResNet18_Weights.NOTHING")
    with pytest.raises(LandcoverError, match="offline, put the file at"):
        resolve("ResNet18_Weights.SENTINEL2_RGB_MOCO")  # not in the cache, and no internet here


def test_a_band_the_weights_lack_starts_from_the_mean_of_the_mapped_filters(tmp_path) -> None:
    from landcover.model.pretrained import resolve

    torch.manual_seed(3)
    state = timm.create_model("resnet18", in_chans=3, num_classes=0).state_dict()
    path = tmp_path / "rgb.pt"
    torch.save(state, path)
    (tmp_path / "rgb.pt.json").write_text(json.dumps({"bands": ["B04", "B03", "B02"], "mean": [0, 0, 0],
                                                      "std": [3000, 3000, 3000]}))
    weights = resolve(str(path))
    net = build_network("SeasonAwareUnet", "resnet18", 4, str(path), weights)
    conv, src = net.encoder.conv1.weight.detach(), state["conv1.weight"]
    assert torch.equal(conv[:, 0], src[:, 2]) and torch.equal(conv[:, 2], src[:, 0])  # B02, B04
    assert torch.allclose(conv[:, 3], src.mean(dim=1))  # B05: the mean of B04, B03, B02's filters


def _batches(n: int = 2, size: int = 32):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        pixels = torch.randint(1, 4000, (2, size, size, 41), generator=g, dtype=torch.int32)
        pixels[..., 40] = torch.randint(1, 11, (2, size, size), generator=g)
        out.append((pixels.to(torch.uint16) if hasattr(torch, "uint16") else pixels,
                    torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 4, dtype=torch.bool)))
    return out


class _Watch(pl.Callback):
    """Records, at each epoch's first batch, whether the encoder trains and what its weights are."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bool, bool, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, task, batch, batch_idx) -> None:
        if batch_idx == 0:
            conv = task.network.encoder.conv1.weight
            self.seen.append((trainer.current_epoch, conv.requires_grad, task.network.encoder.training,
                              conv.detach().clone()))


def test_the_recipe_freezes_the_encoder_then_unfreezes_it_at_a_lower_rate() -> None:
    from landcover.training.task import SegmentationTask

    task = SegmentationTask("Unet", "resnet18", 3, None, lr=1e-2, epochs=3, freeze_encoder_epochs=2,
                            encoder_lr_multiplier=0.1)
    watch = _Watch()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[watch],
                         num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(task, train_dataloaders=torch.utils.data.DataLoader(_batches(), batch_size=None))
    (e0, grad0, train0, w0), (e1, grad1, train1, w1), (e2, grad2, train2, w2) = watch.seen
    assert (grad0, grad1, grad2) == (False, False, True) and (train0, train1, train2) == (False, False, True)
    assert torch.equal(w0, w1) and torch.equal(w1, w2)  # frozen through epochs 0 and 1
    assert not torch.equal(w2, task.network.encoder.conv1.weight.detach())  # trained in epoch 2
    encoder_group, rest = trainer.optimizers[0].param_groups
    assert encoder_group["max_lr"] == pytest.approx(1e-3) and rest["max_lr"] == pytest.approx(1e-2)
    assert {id(p) for p in encoder_group["params"]} == {id(p) for p in task.network.encoder.parameters()}


def test_training_with_torchgeo_weights_records_them_and_uses_their_normalisation(
        torch_home, tiny_dataset, tiny_split, tiny_store, mlflow_store, tmp_path) -> None:
    import mlflow

    from landcover.training.stage import run_train

    _cache_weights("ResNet18_Weights.SENTINEL2_ALL_MOCO", "resnet18", torch_home)
    p = load_params(REPO / "params.yaml", {**TINY_TRAIN, "train.encoder_weights": "ResNet18_Weights.SENTINEL2_ALL_MOCO",
                                           "train.freeze_encoder_epochs": 1, "train.encoder_lr_multiplier": 0.1})
    result = run_train(p, tiny_dataset, tiny_split, tmp_path / "candidate", fast_dev_run=True, store=tiny_store)
    norm = json.loads((tmp_path / "candidate" / "norm_stats.json").read_text())
    assert norm["mean"] == [0.0] * 40 and norm["std"] == [1.0] * 40
    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    assert run.data.tags["encoder_weights"].startswith("ResNet18_Weights.SENTINEL2_ALL_MOCO (https://hf.co/torchgeo/")
    assert run.data.tags["fine_tuning"] == "encoder frozen 1 epochs, lr x 0.1"
    assert run.data.params["encoder_weights"] == "ResNet18_Weights.SENTINEL2_ALL_MOCO"


def test_satlas_weights_are_refused_with_the_reason() -> None:
    from landcover.model.pretrained import resolve

    with pytest.raises(LandcoverError, match="SatlasPretrain's inputs are the 8-bit true-colour image"):
        resolve("ResNet50_Weights.SENTINEL2_SI_MS_SATLAS")


def test_per_band_normalisation_follows_the_band_mapping() -> None:
    """SoftCon-style per-band mean and std: channel (season, our band) takes its band's, / 10000."""
    from landcover.model.pretrained import EncoderWeights, channel_norm

    weights = EncoderWeights("test", {}, tuple(S2_13), np.arange(13) * 100.0 + 1000, np.arange(13) * 10.0 + 500)
    ours_mean, ours_std = np.full(40, 0.3, np.float32), np.full(40, 0.2, np.float32)
    mean, std = channel_norm(weights, ours_mean, ours_std)
    for season in range(4):
        for b, i in enumerate(OURS_IN_13):
            assert mean[season * 10 + b] == pytest.approx((1000 + 100 * i) / 10000)
            assert std[season * 10 + b] == pytest.approx((500 + 10 * i) / 10000)
