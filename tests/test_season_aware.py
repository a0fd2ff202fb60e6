"""The season-aware model, calibration, test-time augmentation and probability layers."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import rasterio
import torch
from rio_cogeo.cogeo import cog_validate

from conftest import REPO, TINY_TRAIN
from landcover.config import PromoteParams, load_params
from landcover.dataset import discover_tiles
from landcover.inference.stage import run_predict
from landcover.model.calibration import (
    CalibrationCounts,
    choose_temperature,
    d4,
    d4_inverse,
    fit_temperature,
    probabilities,
)
from landcover.model.network import build_network
from landcover.model.season_aware import SeasonAwareUnet, TemporalAttention
from landcover.promotion.gates import decide
from landcover.training.calibrate import crop_folds

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


def _reference_ece(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """ECE by torchmetrics (15 bins, L1): code independent of landcover's CalibrationCounts. It sums
    in float32, so over 20000 pixels it agrees with the float64 sums to about 1e-5."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    return float(multiclass_calibration_error(probs, targets, num_classes=10, n_bins=15, norm="l1"))


def _halves(n: int) -> torch.Tensor:
    """Fold 0 for the first half of the pixels, 1 for the second (as two validation tiles would be)."""
    return (torch.arange(n) >= n // 2).long()


def test_an_over_confident_model_is_calibrated_on_held_out_pixels() -> None:
    """Logits 3x those of a calibrated model: T near 3 ships, and the cross-fitted ECE falls to
    about the ECE of the true model (sampling noise), well below the uncalibrated ECE."""
    rng = np.random.default_rng(0)
    true_logits = torch.from_numpy(rng.normal(0, 2, (20000, 10))).float()
    targets = torch.distributions.Categorical(logits=true_logits).sample()
    choice = choose_temperature(true_logits * 3, targets, _halves(len(targets)))
    assert choice.kept and choice.temperature == choice.fitted == pytest.approx(3.0, rel=0.05)
    assert all(t == pytest.approx(3.0, rel=0.05) for t in choice.folds)
    assert choice.ece_uncalibrated == pytest.approx(_reference_ece(torch.softmax(true_logits * 3, 1), targets),
                                                    abs=5e-5)
    assert choice.ece_calibrated < choice.ece_uncalibrated - 0.2  # 0.29 uncalibrated
    assert choice.ece_calibrated <= _reference_ece(torch.softmax(true_logits, 1), targets) + 0.005


def test_a_calibrated_model_keeps_a_temperature_near_one() -> None:
    """Logits whose softmax is the distribution the labels are drawn from: nothing to correct."""
    rng = np.random.default_rng(2)
    logits = torch.from_numpy(rng.normal(0, 2, (20000, 10))).float()
    targets = torch.distributions.Categorical(logits=logits).sample()
    choice = choose_temperature(logits, targets, _halves(len(targets)))
    assert choice.fitted == pytest.approx(1.0, abs=0.1) and choice.temperature == pytest.approx(1.0, abs=0.1)
    assert choice.kept or choice.temperature == 1.0


def test_a_temperature_that_raises_held_out_ece_is_not_shipped() -> None:
    """Negative log-likelihood and ECE disagree: the model's top class is right 70 % of the time
    and says 0.7 (calibrated top class, ECE ~ 0), but puts its remaining 0.3 on a decoy class
    while the labels' other 30 % fall on a third class it gives 1e-4. The NLL fit flattens the
    softmax (T ~ 3.5), which lowers the top-class confidence below its accuracy: T = 1 ships."""
    rng = np.random.default_rng(3)
    n, eps = 20000, 1e-4
    rows = np.arange(n)
    top = rng.integers(0, 10, n)
    decoy = (top + rng.integers(1, 10, n)) % 10
    third = (top + rng.integers(1, 9, n)) % 10
    third = np.where(third == decoy, (third + 1) % 10, third)
    third = np.where(third == top, (third + 1) % 10, third)  # a class other than top and decoy
    assert not ((third == top) | (third == decoy)).any()
    probs = np.full((n, 10), eps)
    probs[rows, top], probs[rows, decoy] = 0.7, 0.3 - 8 * eps
    targets = torch.from_numpy(np.where(rng.random(n) < 0.7, top, third))
    choice = choose_temperature(torch.from_numpy(np.log(probs)).float(), targets, _halves(n))
    assert choice.fitted > 1.5 and not choice.kept and choice.temperature == 1.0
    # every pixel says 0.7, so ECE at T = 1 is |accuracy - 0.7| (one bin)
    accuracy = float((targets.numpy() == top).mean())
    assert choice.ece_uncalibrated == pytest.approx(abs(accuracy - 0.7), abs=1e-5)
    # the held-out figure: each half scored at the other half's T, pooled
    logits = torch.from_numpy(np.log(probs)).float()
    half = _halves(n).bool()
    crossed = torch.cat([torch.softmax(logits[~half] / choice.folds[1], 1),
                         torch.softmax(logits[half] / choice.folds[0], 1)])
    want = _reference_ece(crossed, torch.cat([targets[~half], targets[half]]))
    assert choice.ece_calibrated == pytest.approx(want, abs=5e-5) and want > choice.ece_uncalibrated + 0.1


def test_calibration_folds_are_whole_validation_cities() -> None:
    """Crops of one city never straddle the two folds (its tiles are alike: a fold mixing them would
    hold out little); one city falls back to alternating tiles, one tile to alternating crops."""
    from types import SimpleNamespace

    def folds(*keys: str) -> list[int]:
        return crop_folds(SimpleNamespace(items=[(k, 0, 32 * i) for i, k in enumerate(keys)]))

    # cities in name order: AT002 -> 0, ES001 -> 1, FR003 -> 0
    assert folds("ES001/t0", "AT002/t1", "FR003/t0", "AT002/t0", "ES001/t1") == [1, 0, 0, 0, 1]
    assert folds("AT002/t1", "AT002/t0", "AT002/t1", "AT002/t2") == [1, 0, 1, 0]  # tiles t0, t1, t2
    assert folds("AT002/t0", "AT002/t0", "AT002/t0") == [0, 1, 0]


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
    assert bundle_meta["arch"] == "SeasonAwareUnet"
    # the bundle ships the fitted T only where the held-out ECE says it helps; the evidence is recorded
    t = season_aware_model.metrics
    assert bundle_meta["temperature"] == t["calibration_temperature"]
    if t["calibration_kept"]:
        assert t["calibration_temperature"] == t["calibration_temperature_fitted"]
        assert t["val_ece_calibrated"] <= t["val_ece_uncalibrated"]
    else:
        assert t["calibration_temperature"] == 1.0 and t["val_ece_calibrated"] >= t["val_ece_uncalibrated"]
    logged = mlflow.get_run(season_aware_model.run_id).data.metrics
    assert logged["calibration_kept"] == float(t["calibration_kept"])
    assert logged["calibration_val_ece_calibrated"] == pytest.approx(t["val_ece_calibrated"])
    p = load_params(REPO / "params.yaml", {**TINY_TRAIN, "predict.probabilities": True})
    evaluation = run_evaluation(p, tiny_dataset, tiny_split, season_aware_model.model_uri, tmp_path / "eval",
                                missing_seasons=False)
    m = evaluation.metrics
    assert m["temperature"] == bundle_meta["temperature"]
    if m["temperature"] == 1.0:  # nothing scaled: the two test ECEs are one figure
        assert m["ece"] == m["ece_uncalibrated"]
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
