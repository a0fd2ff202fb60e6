"""Raw batches -> what the network trains on, on the device that trains (GPU or CPU).

Season dropout, normalisation, targets and the D4 transform run here, not in loader processes:
the same arithmetic as `model.normalization.normalize` (float32 `(dn / scale - mean) / std`,
nodata and dropped seasons to 0), so training sees what inference feeds the network: bit for bit
on the CPU (tested), the same IEEE operations on CUDA.
"""

from __future__ import annotations

import torch

from landcover.bands import NUM_BANDS, REFLECTANCE_SCALE
from landcover.training.data import IGNORE_INDEX
from landcover.trainstore.layout import LABEL_BAND


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, drop: torch.Tensor | None = None
              ) -> torch.Tensor:
    """(B, 40, H, W) integer DN -> float32 z-scores; 0 (nodata) and the seasons in `drop` (B, 4) -> 0."""
    dn = x.float()  # exact for uint16
    if drop is not None and bool(drop.any()):
        keep = (~drop).to(dn.dtype).repeat_interleave(NUM_BANDS, dim=1)  # (B, 40)
        dn = dn * keep[:, :, None, None]
    z = dn / torch.full((), REFLECTANCE_SCALE, device=dn.device)  # a tensor: CUDA would multiply by 1/scale
    z = (z - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    return torch.where(dn > 0, z, torch.zeros((), dtype=z.dtype, device=z.device))


def to_target(label: torch.Tensor) -> torch.Tensor:
    """Codes 1..10 -> class indices 0..9; 0 and invalid codes -> IGNORE_INDEX."""
    y = label.long()
    return torch.where((y == 0) | (y > 10), IGNORE_INDEX, y - 1)


def apply_d4(x: torch.Tensor, y: torch.Tensor, d4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: rotate k quarter turns (rows towards columns), then mirror left-right if asked."""
    if not bool(d4.any()):
        return x, y
    xs, ys = [], []
    for xi, yi, (k, flip) in zip(x, y, d4.tolist(), strict=True):
        xi, yi = torch.rot90(xi, k, (1, 2)), torch.rot90(yi, k, (0, 1))
        if flip:
            xi, yi = xi.flip(-1), yi.flip(-1)
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), torch.stack(ys)


def prepare(batch, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels (B, c, c, 41), d4, drop) -> (x (B, 40, c, c) float32, y (B, c, c) int64)."""
    pixels, d4, drop = batch
    x = normalize(pixels[..., :LABEL_BAND].permute(0, 3, 1, 2), mean, std, drop)
    return apply_d4(x, to_target(pixels[..., LABEL_BAND]), d4)
