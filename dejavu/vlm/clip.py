"""CLIP-style vision-language training: Radford et al., *Learning Transferable Visual Models
From Natural Language Supervision*, ICML 2021 (arXiv 2103.00020), section 2.3.

An image tower (a dejavu encoder: backbone and projector, its projector output the image
embedding) and a text tower (`text.TextTower`) map a batch of n image-caption pairs into
one space; after L2 normalisation, the n x n cosine similarities times a learned scale
exp(t) are the logits of two n-way classifications, each image among the captions and each
caption among the images, whose cross-entropies are averaged. t starts at log(1 / 0.07)
and exp(t) is clamped at 100, as the paper does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INITIAL_TEMPERATURE = 0.07
MAX_SCALE = 100.0


def clip_loss(image_z: torch.Tensor, text_z: torch.Tensor,
              log_scale: torch.Tensor) -> torch.Tensor:
    """The symmetric contrastive loss of n pairs: row i of each is one pair."""
    image_z, text_z = F.normalize(image_z, dim=1), F.normalize(text_z, dim=1)
    logits = log_scale.exp().clamp(max=MAX_SCALE) * image_z @ text_z.T
    truth = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, truth) + F.cross_entropy(logits.T, truth)) / 2


class CLIP(nn.Module):
    """The image and text towers and the learned logit scale."""

    def __init__(self, image: nn.Module, text: nn.Module):
        super().__init__()
        self.image, self.text = image, text
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / INITIAL_TEMPERATURE)))

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The loss of a batch of images (N, 3, H, W) in [0, 1] and their captions' ids."""
        return clip_loss(self.image(images)[1], self.text(ids), self.log_scale)
