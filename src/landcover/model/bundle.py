"""A trained model as files: weights (safetensors) plus everything needed to use them.

The bundle travels inside the MLflow model, so normalisation, band and season order, class names,
colours and the fuel crosswalk are never looked up elsewhere at prediction time. Weights load with
safetensors: no pickle from any source is ever executed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from landcover import __version__
from landcover.bands import BANDS, SEASONS
from landcover.classes import CLASSES
from landcover.io_utils import atomic_path, atomic_write_json
from landcover.model.calibration import probabilities
from landcover.model.network import build_network
from landcover.model.normalization import NormStats, normalize

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"


@dataclass
class BundleMeta:
    arch: str
    encoder: str
    encoder_depth: int
    norm: dict
    crosswalk: dict[int, int]
    crosswalk_version: str
    bands: list[str] = field(default_factory=lambda: list(BANDS))
    seasons: list[str] = field(default_factory=lambda: list(SEASONS))
    classes: list[dict] = field(default_factory=lambda: [
        {"code": c.code, "name": c.name, "colour": c.colour} for c in CLASSES])
    software_version: str = __version__
    temperature: float = 1.0  # logits are divided by it (fitted on the validation split; 1 = uncalibrated)

    @classmethod
    def from_json(cls, d: dict) -> BundleMeta:
        d = dict(d)
        d["crosswalk"] = {int(k): int(v) for k, v in d["crosswalk"].items()}
        return cls(**d)


@dataclass
class ModelBundle:
    network: torch.nn.Module
    meta: BundleMeta

    @property
    def norm(self) -> NormStats:
        return NormStats.from_dict(self.meta.norm)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        atomic_write_json(directory / META_FILE, asdict(self.meta))

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> ModelBundle:
        directory = Path(directory)
        meta = BundleMeta.from_json(json.loads((directory / META_FILE).read_text()))
        network = build_network(meta.arch, meta.encoder, meta.encoder_depth)
        network.load_state_dict(load_file(str(directory / WEIGHTS_FILE), device="cpu"))
        network.eval().to(device)
        return cls(network, meta)

    @torch.inference_mode()
    def predict_proba(self, dn: np.ndarray, device: str | torch.device = "cpu", tta: bool = False) -> np.ndarray:
        """(N, 40, H, W) raw reflectance x 10000 -> (N, 10, H, W) calibrated class probabilities.
        H and W must be multiples of 32 (the encoder's stride); callers pad."""
        x = torch.from_numpy(normalize(dn, self.norm)).to(device)
        return probabilities(self.network, x, self.meta.temperature, tta and dn.shape[-1] == dn.shape[-2]).cpu().numpy()
