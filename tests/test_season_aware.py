"""The season-aware model, calibration, test-time augmentation and probability layers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rio_cogeo.cogeo import cog_validate

from conftest import REPO, TINY_TRAIN
from landcover.config import PromoteParams, load_params
from landcover.dataset import discover_tiles
from landcover.inference.stage import run_predict
from landcover.model.calibration import CalibrationCounts, d4, d4_inverse, fit_temperature, probabilities
from landcover.model.network import build_network
from landcover.model.season_aware import SeasonAwareUnet, TemporalAttention
from landcover.promotion.gates import decide

torch.manual_seed(0)


def test_a_masked_season_contributes_nothing_to_the_attention() -> None:
    attention = TemporalAttention(channels=8, seasons=4)
    feats = torch.randn(2, 4, 8, 5, 5)
    present = torch.ones(2, 4, 5, 5, dtype=torch.bool)
    present[:, 2] = False  # autumn missing everywhere
    present[0, :, 0, 0] = False  # one pixel with no season at all
    out = attention(feats, present)
    other = feats.clone()
    other[:, 2] = torch.randn(2, 8, 5, 5) * 100  # whatever the missing season's features are
    assert torch.allclose(attention(other, present), out)
    weights = attention.weights(feats, present)
    assert (weights[:, 2] == 0).all()
    assert torch.allclose(weights[1].sum(0), torch.ones(4, 5, 5))
    assert (out[0, :, 0, 0] == 0).all()


def test_a_missing_season_is_masked_at_every_scale_of_the_network() -> None:
    """A season all nodata (0 after normalisation) never reaches the decoder: the output does not
    change when that season's encoder features are replaced by anything else."""
    net = SeasonAwareUnet("resnet18", 3).eval()
    x = torch.randn(1, 40, 64, 64)
    x[:, 30:40] = 0  # winter missing
    with torch.no_grad():
        want = net(x)
        original = net.season_features

        def scrambled(inp):
            feats = original(inp)
            for f in feats[1:]:
                f[:, 3] = torch.randn_like(f[:, 3]) * 50
            return feats

        net.season_features = scrambled
        got = net(x)
    assert torch.allclose(got, want, atol=1e-5)
    assert SeasonAwareUnet.presence(x)[0, 3].sum() == 0 and SeasonAwareUnet.presence(x)[0, :3].all()


def test_any_memory_layout_is_accepted() -> None:
    """Batches arrive non-contiguous (rotated TTA views, slices of a strip): same output as a copy.
    The model once failed on them with a `view` error in the benchmark."""
    net = SeasonAwareUnet("resnet18", 3).eval()
    x = torch.randn(2, 64, 64, 40).permute(0, 3, 1, 2)  # channels last, as numpy hands some arrays over
    assert not x.is_contiguous()
    with torch.no_grad():
        assert torch.allclose(net(x), net(x.contiguous()), atol=1e-5)


@pytest.mark.parametrize("arch", ["Unet", "SeasonAwareUnet"])
def test_local_imagenet_weights_load_into_both_architectures(arch, tmp_path) -> None:
    import segmentation_models_pytorch as smp

    encoder = smp.encoders.get_encoder("resnet18", in_channels=3, depth=3, weights=None)
    torch.save(encoder.state_dict(), tmp_path / "resnet18.pth")
    net = build_network(arch, "resnet18", 3, str(tmp_path / "resnet18.pth"))
    conv = net.encoder.conv1.weight
    assert conv.shape[1] == (10 if arch == "SeasonAwareUnet" else 40)
    # SMP's widening repeats the RGB kernels (scaled): the first three input channels are RGB * 3 / n
    assert torch.allclose(conv[:, :3], encoder.conv1.weight * 3 / conv.shape[1], atol=1e-6)


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    true_logits = torch.from_numpy(rng.normal(0, 2, (20000, 10))).float()
    targets = torch.distributions.Categorical(logits=true_logits).sample()
    t = fit_temperature(true_logits * 3, targets)  # an over-confident model: logits 3x too large
    assert t == pytest.approx(3.0, rel=0.05)


def test_streaming_ece_equals_torchmetrics() -> None:
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(0, 2, (5000, 10))).float()
    probs = torch.softmax(logits, 1)
    target = torch.from_numpy(rng.integers(0, 10, 5000))
    counts = CalibrationCounts()
    top, pred = probs.max(1)
    counts.update(top[:2000].numpy(), (pred == target)[:2000].numpy())  # streamed in two parts
    counts.update(top[2000:].numpy(), (pred == target)[2000:].numpy())
    want = multiclass_calibration_error(probs, target, num_classes=10, n_bins=15, norm="l1")
    assert counts.ece() == pytest.approx(float(want), abs=1e-6)


def test_test_time_augmentation_averages_the_d4_group() -> None:
    x = torch.randn(2, 40, 32, 32)
    for k in range(4):
        for flip in (False, True):
            assert torch.equal(d4_inverse(d4(x, k, flip), k, flip), x)
    pointwise = torch.nn.Conv2d(40, 10, 1)  # commutes with every flip and rotation: TTA changes nothing
    with torch.no_grad():
        assert torch.allclose(probabilities(pointwise, x, tta=True), probabilities(pointwise, x), atol=1e-6)
        net = SeasonAwareUnet("resnet18", 3).eval()
        plain, tta = probabilities(net, x), probabilities(net, x, tta=True)
    assert torch.allclose(tta.sum(1), torch.ones(2, 32, 32), atol=1e-5) and not torch.allclose(plain, tta)


def test_the_ece_gate() -> None:
    from test_promotion import scores

    gates = PromoteParams(min_miou=0.3, min_class_iou=0.05, margin=0.005, max_ece=0.05)
    assert decide({**scores(0.6), "ece": 0.03}, None, gates).alias == "champion"
    decision = decide({**scores(0.6), "ece": 0.08}, None, gates)
    assert decision.alias == "challenger"
    assert any("ECE 0.0800 is above the ceiling 0.0500" in r for r in decision.reasons)


@pytest.fixture(scope="module")
def season_aware_model(tiny_dataset, tiny_split, tiny_store, mlflow_store, tmp_path_factory):
    from landcover.training.stage import run_train

    p = load_params(REPO / "params.yaml", {**TINY_TRAIN, "train.arch": "SeasonAwareUnet"})
    return run_train(p, tiny_dataset, tiny_split, tmp_path_factory.mktemp("sa") / "candidate", fast_dev_run=True,
                     store=tiny_store)


def test_the_season_aware_model_trains_calibrates_evaluates_and_predicts_probabilities(
        season_aware_model, tiny_dataset, tiny_split, tmp_path) -> None:
    from landcover.evaluation.stage import run_evaluation

    bundle_meta = json.loads((season_aware_model.out_dir / "bundle/model.json").read_text())
    assert bundle_meta["arch"] == "SeasonAwareUnet" and bundle_meta["temperature"] > 0
    p = load_params(REPO / "params.yaml", {**TINY_TRAIN, "predict.probabilities": True})
    evaluation = run_evaluation(p, tiny_dataset, tiny_split, season_aware_model.model_uri, tmp_path / "eval",
                                missing_seasons=False)
    m = evaluation.metrics
    assert 0 <= m["ece"] <= 1 and 0 <= m["ece_uncalibrated"] <= 1 and m["temperature"] == bundle_meta["temperature"]
    assert (tmp_path / "eval/reliability.png").stat().st_size > 10_000
    for state in ("calibrated", "uncalibrated"):
        assert (tmp_path / f"eval/reliability_{state}.csv").read_text().startswith("confidence,accuracy,share")

    result = run_predict(p, tiny_dataset, tmp_path / "out", season_aware_model.model_uri)
    assert not result.failed
    tile = discover_tiles(tiny_dataset)[0][0]
    folder = tmp_path / "out" / tile.city_id / tile.tile_id
    valid, errors, _ = cog_validate(str(folder / "probabilities.tif"), quiet=True)
    assert valid, errors
    with rasterio.open(folder / "probabilities.tif") as pr, rasterio.open(folder / "landcover.tif") as lc:
        probs, codes = pr.read().astype(np.int32), lc.read(1)
        assert pr.count == 10 and pr.descriptions[8] == "Coniferous Forest probability (percent)"
        assert pr.nodata == 255
    mapped = codes > 0
    total = probs.sum(0)[mapped]
    assert total.min() >= 95 and total.max() <= 105  # rounding of ten percentages
    # the mapped class holds the highest percentage (up to the rounding of two near-equal ones)
    chosen = np.take_along_axis(probs, np.clip(codes.astype(np.int64) - 1, 0, 9)[None], 0)[0][mapped]
    assert (probs.max(0)[mapped] - chosen).max() <= 1
    item = json.loads((folder / "item.json").read_text())
    assert item["assets"]["probabilities"]["raster:bands"][0]["unit"] == "percent"
    assert json.loads((folder / "provenance.json").read_text())["probabilities"] is True
