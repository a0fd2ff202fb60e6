"""A season-aware U-Net: one shared encoder per season, temporal attention across seasons, one decoder.

The early-fusion U-Net stacks the four seasons as 40 channels, so a missing season arrives as
zeros and the network must learn what zeros mean. Here each season's 10 bands go through the same
2-D encoder (any SMP / timm encoder) and, at every scale, a light temporal attention in the spirit
of L-TAE (Garnot & Landrieu 2020; U-TAE shows the design for segmentation) fuses the seasons: per
pixel and per head, a learned query scores each season's key (its features plus a learned season
embedding), and a softmax over the seasons *present* at that pixel weights their features. A
missing season (all its bands nodata, which normalisation maps to exactly 0) is masked out of the
softmax, so it contributes nothing; season dropout during training teaches the model to do
without. A standard U-Net decoder (SMP's) turns the fused features into class logits.
"""

from __future__ import annotations

import math

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from torch import nn

from landcover.bands import NUM_BANDS, NUM_SEASONS
from landcover.classes import NUM_CLASSES

HEADS = 4
KEY_DIM = 16


class TemporalAttention(nn.Module):
    """(B, S, C, H, W) season features + (B, S, H, W) presence -> (B, C, H, W)."""

    def __init__(self, channels: int, seasons: int = NUM_SEASONS, heads: int = HEADS, key_dim: int = KEY_DIM) -> None:
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.key_dim = key_dim
        self.key = nn.Conv2d(channels, self.heads * key_dim, kernel_size=1)
        self.query = nn.Parameter(torch.randn(self.heads, key_dim) / math.sqrt(key_dim))
        self.season_embedding = nn.Parameter(torch.randn(seasons, self.heads * key_dim) * 0.1)

    def weights(self, feats: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, S, heads, H, W) attention weights; 0 for a season absent at a pixel."""
        b, s, c, h, w = feats.shape
        keys = self.key(feats.flatten(0, 1)).reshape(b, s, self.heads * self.key_dim, h, w)
        keys = keys + self.season_embedding[None, :, :, None, None]
        keys = keys.reshape(b, s, self.heads, self.key_dim, h, w)
        scores = (keys * self.query[None, None, :, :, None, None]).sum(3) / math.sqrt(self.key_dim)
        scores = scores.masked_fill(~present[:, :, None], float("-inf"))
        # a pixel with no season at all: every weight 0 (softmax of all -inf is NaN)
        return torch.nan_to_num(torch.softmax(scores, dim=1), nan=0.0)

    def forward(self, feats: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, s, c, h, w = feats.shape
        weights = self.weights(feats, present)
        grouped = feats.reshape(b, s, self.heads, c // self.heads, h, w)
        return (weights[:, :, :, None] * grouped).sum(1).reshape(b, c, h, w)


class SeasonAwareUnet(nn.Module):
    """Input (B, 40, H, W) season-major normalised bands, output (B, 10, H, W) class logits."""

    def __init__(self, encoder: str = "resnet18", encoder_depth: int = 4, imagenet: bool = False) -> None:
        super().__init__()
        # one encoder for every season: pretrained weights (model/pretrained.py) fit all four at once
        self.encoder = smp.encoders.get_encoder(encoder, in_channels=NUM_BANDS, depth=encoder_depth,
                                                weights="imagenet" if imagenet else None)
        channels = self.encoder.out_channels
        self.fusion = nn.ModuleList(TemporalAttention(c) for c in channels[1:])
        decoder_channels = (256, 128, 64, 32, 16)[5 - encoder_depth:]
        self.decoder = UnetDecoder(encoder_channels=channels, decoder_channels=decoder_channels,
                                   n_blocks=encoder_depth)
        self.segmentation_head = SegmentationHead(decoder_channels[-1], NUM_CLASSES, kernel_size=3)

    @staticmethod
    def presence(x: torch.Tensor) -> torch.Tensor:
        """(B, S, H, W): a season is present at a pixel unless all its bands are exactly 0 (nodata)."""
        b, _, h, w = x.shape
        return (x.reshape(b, NUM_SEASONS, NUM_BANDS, h, w) != 0).any(2)

    def season_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, _, h, w = x.shape
        feats = self.encoder(x.reshape(b * NUM_SEASONS, NUM_BANDS, h, w))
        return [f.reshape(b, NUM_SEASONS, *f.shape[1:]) for f in feats]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        present = self.presence(x)
        feats = self.season_features(x)
        fused = [feats[0].mean(1)]  # the input level: the decoder does not use it
        for level, attention in zip(feats[1:], self.fusion, strict=True):
            mask = F.adaptive_max_pool2d(present.float(), level.shape[-2:]) > 0
            fused.append(attention(level, mask))
        return self.segmentation_head(self.decoder(fused))
