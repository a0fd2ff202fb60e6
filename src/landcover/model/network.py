"""The segmentation network: any segmentation-models-pytorch architecture on the 40-channel season
stack (early fusion), or `SeasonAwareUnet` (one encoder per season, temporal attention)."""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

from landcover.bands import NUM_BANDS, NUM_CHANNELS
from landcover.classes import NUM_CLASSES
from landcover.errors import LandcoverError

SEASON_AWARE = "SeasonAwareUnet"


def check_arch_and_encoder(arch: str, encoder: str) -> None:
    """Fail before training with a message naming the params key."""
    archs = {a.__name__: a for a in smp.__dict__.values() if isinstance(a, type) and issubclass(a, nn.Module)}
    if (arch not in archs or arch in {"SegmentationModel"}) and arch != SEASON_AWARE:
        raise LandcoverError(f"params train.arch: unknown architecture {arch!r}")
    if encoder not in smp.encoders.get_encoder_names() and not encoder.startswith("tu-"):
        raise LandcoverError(
            f"params train.encoder: unknown encoder {encoder!r} (see smp.encoders.get_encoder_names())")


def build_network(arch: str, encoder: str, encoder_depth: int = 5, encoder_weights: str | None = None) -> nn.Module:
    """Create the network; `encoder_weights` may be a local file of ImageNet (3-channel) weights,
    adapted to 40 channels the way SMP adapts its own pretrained weights."""
    check_arch_and_encoder(arch, encoder)
    if arch == SEASON_AWARE:
        from landcover.model.season_aware import SeasonAwareUnet

        if encoder_weights is None:
            return SeasonAwareUnet(encoder, encoder_depth)
        model = SeasonAwareUnet(encoder, encoder_depth, encoder_channels=3)  # ImageNet weights, widened
        _load_encoder_weights(model.encoder, encoder_weights, encoder, NUM_BANDS)
        return model
    kwargs: dict = {}
    if arch in {"Unet", "UnetPlusPlus", "MAnet"}:
        kwargs["encoder_depth"] = encoder_depth
        kwargs["decoder_channels"] = (256, 128, 64, 32, 16)[5 - encoder_depth :]
    elif arch in {"FPN", "DeepLabV3Plus", "Linknet", "PAN", "PSPNet"}:
        kwargs["encoder_depth"] = 5 if arch in {"DeepLabV3Plus", "PAN"} else max(encoder_depth, 3)
    if encoder_weights is None:
        return smp.create_model(arch, encoder_name=encoder, encoder_weights=None,
                                in_channels=NUM_CHANNELS, classes=NUM_CLASSES, **kwargs)
    model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, in_channels=3,
                             classes=NUM_CLASSES, **kwargs)
    _load_encoder_weights(model.encoder, encoder_weights, encoder, NUM_CHANNELS)
    return model


def freeze_unused(network: nn.Module, size: int = 64) -> list[str]:
    """Stop training parameters no forward pass uses, and name them.

    SMP keeps an encoder's deeper stages when `encoder_depth` < 5 (ResNet's layer4 at depth 4):
    their weights never get a gradient. Single-device training does not mind; DDP refuses to run
    ("parameters that were not used in producing the loss"). Frozen, they stay in the state dict,
    so bundles keep their keys. Found by the two-process DDP test."""
    was_training = network.training
    network.eval()  # no BatchNorm statistics change from the probe
    network.zero_grad(set_to_none=True)
    network(torch.zeros(1, NUM_CHANNELS, size, size)).float().sum().backward()
    unused = [name for name, p in network.named_parameters() if p.requires_grad and p.grad is None]
    for name, p in network.named_parameters():
        if name in unused:
            p.requires_grad_(False)
    network.zero_grad(set_to_none=True)
    network.train(was_training)
    return unused


def _load_encoder_weights(module: nn.Module, weights: str, encoder: str, channels: int) -> None:
    """3-channel ImageNet weights from a local file into a 3-channel encoder, then its first
    convolution widened to `channels` the way SMP adapts its own pretrained weights."""
    from segmentation_models_pytorch.encoders._utils import patch_first_conv

    path = Path(weights)
    if not path.is_file():
        raise LandcoverError(f"params train.encoder_weights: file {path} not found (no downloads here)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    expected = set(module.state_dict())
    if len(expected - set(state)) > len(expected) // 2:
        raise LandcoverError(f"{path}: weights do not match encoder {encoder!r}")
    module.load_state_dict(state, strict=False)  # SMP's encoders drop the classifier keys and return None
    patch_first_conv(module, new_in_channels=channels, pretrained=True)
