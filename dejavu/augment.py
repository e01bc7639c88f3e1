"""Per-image random augmentation of whole batches on the training device.

torchvision's v2 transforms draw one set of parameters for a whole batch tensor; SSL needs a
fresh draw per image, so the random-resized-crop is expressed as one affine sampling grid
per image and applied with a single `grid_sample` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    scale_min: float = 0.08
    scale_max: float = 1.0
    ratio_min: float = 1 / 3
    ratio_max: float = 3.0
    flip_prob: float = 0.5


def crop_boxes(n: int, cfg: AugmentConfig, generator: torch.Generator,
               device: torch.device, tries: int = 10) -> torch.Tensor:
    """(n, 4) crops as (centre x, centre y, width, height), fractions of the image side.

    Like torchvision's RandomResizedCrop: area fraction ~ U(scale), log aspect ~ U(log ratio),
    redrawn up to `tries` times when the crop does not fit; then the whole image.
    """
    area = torch.empty(n, tries, device=device).uniform_(cfg.scale_min, cfg.scale_max,
                                                          generator=generator)
    log_r = torch.empty(n, tries, device=device).uniform_(
        math.log(cfg.ratio_min), math.log(cfg.ratio_max), generator=generator)
    w, h = torch.sqrt(area * log_r.exp()), torch.sqrt(area / log_r.exp())
    fits = (w <= 1) & (h <= 1)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full_like(fits[:, 0], -1,
                                                                             dtype=torch.long))
    pick = first.clamp(min=0)[:, None]
    w = torch.where(first >= 0, w.gather(1, pick)[:, 0], torch.ones(n, device=device))
    h = torch.where(first >= 0, h.gather(1, pick)[:, 0], torch.ones(n, device=device))
    u = torch.rand(n, 2, device=device, generator=generator)
    cx, cy = w / 2 + u[:, 0] * (1 - w), h / 2 + u[:, 1] * (1 - h)
    return torch.stack([cx, cy, w, h], dim=1)


def random_resized_crop_flip(x: torch.Tensor, cfg: AugmentConfig,
                             generator: torch.Generator) -> torch.Tensor:
    """x: (N, C, H, W) float -> (N, C, H, W), an independent crop and flip per image."""
    n = x.shape[0]
    box = crop_boxes(n, cfg, generator, x.device)
    flip = torch.rand(n, device=x.device, generator=generator) < cfg.flip_prob
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    # Normalised coordinates run over [-1, 1]: a crop of width w centred at cx maps output
    # x_out to input x_in = w * x_out + (2 cx - 1); a flip negates the x scale.
    theta[:, 0, 0] = box[:, 2] * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = 2 * box[:, 0] - 1
    theta[:, 1, 1] = box[:, 3]
    theta[:, 1, 2] = 2 * box[:, 1] - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
