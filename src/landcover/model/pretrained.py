"""Encoder weights pretrained on Sentinel-2 (or ImageNet, or a state dict of one's own), fitted to this
project's 10 bands and 4 seasons.

`train.encoder_weights` names them:
- `imagenet`: SMP's / timm's ImageNet weights, widened to our channels the way SMP widens them;
  our normalisation is kept (ImageNet's RGB statistics mean nothing for reflectance).
- a torchgeo weights name, `ResNet18_Weights.SENTINEL2_ALL_MOCO`, `ResNet50_Weights.SENTINEL2_ALL_DINO`,
  ...: loaded through torchgeo's enum (`weights.get_state_dict`, torch.hub's cache: offline, a file
  already in `$TORCH_HOME/hub/checkpoints/` is used), with the weights' own band list (`meta["bands"]`)
  and input transform (its `Normalize`).
- a local file or URL of a state dict, with an optional `<file>.json` beside it: `{"bands": [...],
  "mean": [...], "std": [...]}` (per band, in reflectance x 10000); without it, a state dict whose
  first convolution takes 10 channels is one of ours (our bands in our order, our normalisation), as
  `benchmarks/transfer.py` saves, and one that takes 3 is ImageNet's, widened as SMP widens it.

Our bands are matched to the weights' by name (B2 = B02, B8a = B8A); filters of bands we do not have
are dropped; a band of ours the weights lack gets the mean of the mapped filters (a neutral start:
the band adds what the mean filter sees until training separates it); no band in common is a one-line
error naming both lists. The season-aware model's shared encoder takes the 10 mapped filters; the
early-fusion model's 40 channels take them once per season, scaled by 1/4, so the first layer's
response to four identical seasons equals the pretrained one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from landcover.bands import BANDS, NUM_SEASONS, REFLECTANCE_SCALE
from landcover.errors import LandcoverError

FIRST_CONV = "conv1.weight"  # ResNet-family encoders (SMP's, timm's and torchgeo's share the key names)
MIN_LOADED = 0.9  # share of the encoder's tensors a state dict must supply (by name and shape)


def band_key(name: str) -> str:
    """B2, B02, b02 -> 2; B8a, B8A, B08A -> 8A."""
    found = re.fullmatch(r"[Bb]0*(\d+)([Aa]?)", str(name).strip())
    if not found:
        raise LandcoverError(f"encoder weights: band name {name!r} is not a Sentinel-2 band (B01 ... B12, B8A)")
    return f"{int(found[1])}{found[2].upper()}"


@dataclass
class EncoderWeights:
    source: str  # what was loaded, for the run's params and the model card
    state: dict[str, torch.Tensor]
    bands: tuple[str, ...]  # the weights' input bands, in their order
    mean: np.ndarray | None  # per weight band, reflectance x 10000; None: keep our normalisation
    std: np.ndarray | None
    imagenet_rgb: bool = False  # a 3-channel ImageNet state dict: widened as SMP widens its own weights

    def band_index(self) -> list[int | None]:
        """For each of our bands, its index among the weights' bands (None: the weights lack it)."""
        theirs = {band_key(b): k for k, b in enumerate(self.bands)}
        index = [theirs.get(band_key(b)) for b in BANDS]
        if all(i is None for i in index):
            raise LandcoverError(f"encoder weights {self.source}: none of our bands {list(BANDS)} is among "
                                 f"the weights' bands {list(self.bands)}")
        return index


def is_torchgeo_name(spec: str) -> bool:
    return bool(re.fullmatch(r"\w+_Weights\.\w+", spec))


def resolve(spec: str) -> EncoderWeights:
    """The state dict, bands and normalisation of `train.encoder_weights` (not `imagenet`)."""
    if is_torchgeo_name(spec):
        return _torchgeo(spec)
    if spec.startswith(("http://", "https://")):
        state = torch.hub.load_state_dict_from_url(spec, map_location="cpu", weights_only=True, progress=True)
        return _with_sidecar(spec, state, None)
    path = Path(spec)
    if not path.is_file():
        raise LandcoverError(f"params train.encoder_weights: {spec!r} is no file, URL, `imagenet` or torchgeo "
                             "weights name (e.g. ResNet18_Weights.SENTINEL2_ALL_MOCO)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return _with_sidecar(str(path), state, path.with_name(path.name + ".json"))


def _torchgeo(spec: str) -> EncoderWeights:
    try:
        import torchgeo.models
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise LandcoverError(f"encoder weights {spec}: torchgeo is not installed") from exc
    enum_name, member = spec.split(".")
    if "SATLAS" in member:
        raise LandcoverError(f"encoder weights {spec}: SatlasPretrain's inputs are the 8-bit true-colour image "
                             "(TCI) for B04, B03, B02, which our composites do not carry; use SSL4EO-S12 weights "
                             "(SENTINEL2_ALL_MOCO, _DINO, _DECUR, _SOFTCON, ...)")
    enum = getattr(torchgeo.models, enum_name, None)
    weights = getattr(enum, member, None) if enum is not None else None
    if weights is None:
        raise LandcoverError(f"params train.encoder_weights: torchgeo has no weights {spec}")
    bands = weights.meta.get("bands")
    if not bands:
        raise LandcoverError(f"encoder weights {spec}: torchgeo's metadata lists no bands")
    try:
        state = weights.get_state_dict(progress=True)
    except Exception as exc:  # noqa: BLE001 - offline without the file in the cache, or a broken download
        cache = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
        raise LandcoverError(f"encoder weights {spec}: cannot load {weights.url} ({exc}); offline, put the file "
                             f"at {cache}") from exc
    mean, std = _normalize_of(weights.transforms, len(bands))
    return EncoderWeights(f"{spec} ({weights.url})", state, tuple(bands), mean, std)


def _normalize_of(transforms, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The mean and std of the `Normalize` in a torchgeo transform (torchvision's, or kornia's in older
    torchgeo releases), one value per band."""
    for module in transforms.modules() if transforms is not None else ():
        if type(module).__name__ != "Normalize":
            continue
        found = getattr(module, "flags", None) or {"mean": getattr(module, "mean", None),
                                                   "std": getattr(module, "std", None)}
        if found.get("mean") is not None and found.get("std") is not None:
            mean = np.broadcast_to(np.asarray(found["mean"], np.float64).ravel(), (n,)).copy()
            std = np.broadcast_to(np.asarray(found["std"], np.float64).ravel(), (n,)).copy()
            return mean, std
    return None, None


def _with_sidecar(source: str, state: dict, sidecar: Path | None) -> EncoderWeights:
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if sidecar is not None and sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        bands = tuple(meta["bands"])
        mean = np.asarray(meta["mean"], np.float64) if meta.get("mean") is not None else None
        std = np.asarray(meta["std"], np.float64) if meta.get("std") is not None else None
        return EncoderWeights(source, state, bands, mean, std)
    channels = state[FIRST_CONV].shape[1] if FIRST_CONV in state else len(BANDS)
    if channels == 3:  # ImageNet weights of the encoder, as `imagenet` would give them
        return EncoderWeights(source, state, ("R", "G", "B"), None, None, imagenet_rgb=True)
    if channels != len(BANDS):
        raise LandcoverError(f"encoder weights {source}: {channels} input channels and no {Path(source).name}.json "
                             "naming their bands (bands, mean, std)")
    return EncoderWeights(source, state, BANDS, None, None)


def adapt_first_conv(weight: torch.Tensor, index: list[int | None], early_fusion: bool) -> torch.Tensor:
    """The weights' first convolution (out, their bands, k, k) on our channels: 10 (one season, the
    season-aware encoder) or 40 (season-major, each season's copy scaled by 1/4)."""
    mapped = [i for i in index if i is not None]
    fill = weight[:, mapped].mean(dim=1)
    ours = torch.stack([weight[:, i] if i is not None else fill for i in index], dim=1)
    if early_fusion:
        return torch.cat([ours] * NUM_SEASONS, dim=1) / NUM_SEASONS
    return ours


def load_into(encoder: torch.nn.Module, weights: EncoderWeights, early_fusion: bool) -> list[str]:
    """Load the weights into an SMP encoder (its first convolution adapted); returns the encoder keys
    left at their initialisation. Fails naming the encoder when too few tensors fit."""
    state = {k.removeprefix("module.").removeprefix("encoder."): v for k, v in weights.state.items()}
    if FIRST_CONV not in state:
        raise LandcoverError(f"encoder weights {weights.source}: no {FIRST_CONV} (a ResNet-family state dict "
                             "is needed for this encoder)")
    if weights.imagenet_rgb:  # SMP's own widening: the RGB filters repeated over the channels, x 3 / n
        rgb = state[FIRST_CONV]
        n = len(BANDS) * (NUM_SEASONS if early_fusion else 1)
        state[FIRST_CONV] = torch.stack([rgb[:, i % 3] for i in range(n)], dim=1) * (3 / n)
    else:
        state[FIRST_CONV] = adapt_first_conv(state[FIRST_CONV], weights.band_index(), early_fusion)
    own = encoder.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(fitting) < MIN_LOADED * len(own):
        wrong = sorted(k for k in own if k in state and own[k].shape != state[k].shape)[:3]
        raise LandcoverError(f"encoder weights {weights.source}: only {len(fitting)} of the encoder's {len(own)} "
                             f"tensors fit (by name and shape{'; e.g. ' + ', '.join(wrong) if wrong else ''}): "
                             "they are for another encoder (train.encoder)")
    encoder.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))


def channel_norm(weights: EncoderWeights, ours_mean: np.ndarray, ours_std: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (40, season-major) mean and std in reflectance (0..1): the weights' for the bands
    they have, ours for the bands they lack; ours throughout when the weights carry none."""
    if weights.mean is None or weights.std is None or weights.imagenet_rgb:
        return ours_mean, ours_std
    index = weights.band_index()
    mean, std = ours_mean.astype(np.float64).copy(), ours_std.astype(np.float64).copy()
    for season in range(NUM_SEASONS):
        for b, i in enumerate(index):
            if i is not None:
                c = season * len(BANDS) + b
                mean[c] = weights.mean[i] / REFLECTANCE_SCALE
                std[c] = weights.std[i] / REFLECTANCE_SCALE
    return mean.astype(np.float32), std.astype(np.float32)
