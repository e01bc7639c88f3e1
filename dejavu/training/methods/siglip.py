"""Sigmoid-loss vision-language training: Zhai et al., *Sigmoid Loss for Language Image
Pre-Training*, ICCV 2023 (arXiv 2303.15343), section 3.

CLIP's towers and data (`clip.py`); instead of two softmax classifications over the batch,
every image-caption pair of it is its own binary question -- do they belong together? --
answered by sigmoid(t x·y + b) of the normalised embeddings, with a learned scale t
(starting at 10) and bias b (starting at -10, so that the many unmatched pairs start near
their answer). The loss is the negative log-likelihood summed over the pairs, divided by n.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import register
from .clip import CLIP

INITIAL_SCALE, INITIAL_BIAS = 10.0, -10.0


def sigmoid_loss(image_z: torch.Tensor, text_z: torch.Tensor, log_scale: torch.Tensor,
                 bias: torch.Tensor) -> torch.Tensor:
    """-(1/n) sum over the n x n pairs of log sigmoid(z_ij (t x_i.y_j + b)), z_ij = 1 on the
    diagonal (pair i's own caption) and -1 elsewhere."""
    image_z, text_z = F.normalize(image_z, dim=1), F.normalize(text_z, dim=1)
    logits = log_scale.exp() * image_z @ text_z.T + bias
    signs = 2 * torch.eye(len(logits), device=logits.device) - 1
    return -F.logsigmoid(signs * logits).sum() / len(logits)


@register
class SigLIP(CLIP):
    name = "siglip"

    def __init__(self, model, classes=0, **options):
        super().__init__(model, classes, **options)
        self.log_scale = nn.Parameter(torch.tensor(math.log(INITIAL_SCALE)))
        self.bias = nn.Parameter(torch.tensor(INITIAL_BIAS))

    def pair_loss(self, image_z, text_z):
        return sigmoid_loss(image_z, text_z, self.log_scale, self.bias)
