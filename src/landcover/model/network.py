"""The segmentation network: any segmentation-models-pytorch architecture on the 40-channel season
stack (early fusion), or `SeasonAwareUnet` (one encoder per season, temporal attention)."""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from torch import nn

from landcover.bands import NUM_CHANNELS
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


def build_network(arch: str, encoder: str, encoder_depth: int = 5, encoder_weights: str | None = None,
                  weights=None) -> nn.Module:
    """Create the network. `encoder_weights`: None (random), `imagenet` (SMP widens its 3 channels), a
    torchgeo weights name, or a state dict's file or URL (`model/pretrained.py` maps its bands onto
    ours). `weights` (an `EncoderWeights` already resolved) saves resolving them twice."""
    check_arch_and_encoder(arch, encoder)
    imagenet = encoder_weights == "imagenet"
    if arch == SEASON_AWARE:
        from landcover.model.season_aware import SeasonAwareUnet

        model = SeasonAwareUnet(encoder, encoder_depth, imagenet=imagenet)
    else:
        kwargs: dict = {}
        if arch in {"Unet", "UnetPlusPlus", "MAnet"}:
            kwargs["encoder_depth"] = encoder_depth
            kwargs["decoder_channels"] = (256, 128, 64, 32, 16)[5 - encoder_depth :]
        elif arch in {"FPN", "DeepLabV3Plus", "Linknet", "PAN", "PSPNet"}:
            kwargs["encoder_depth"] = 5 if arch in {"DeepLabV3Plus", "PAN"} else max(encoder_depth, 3)
        model = smp.create_model(arch, encoder_name=encoder, encoder_weights="imagenet" if imagenet else None,
                                 in_channels=NUM_CHANNELS, classes=NUM_CLASSES, **kwargs)
    if encoder_weights and not imagenet:
        from landcover.model.pretrained import load_into, resolve

        load_into(model.encoder, weights or resolve(encoder_weights), early_fusion=arch != SEASON_AWARE)
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
