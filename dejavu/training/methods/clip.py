"""CLIP-style vision-language training: Radford et al., *Learning Transferable Visual Models
From Natural Language Supervision*, ICML 2021 (arXiv 2103.00020), section 2.3.

The encoder's image tower (backbone and projector: its projector output is the image
embedding) and a text tower it gains here (`core.text.TextTower`, saved with it) map a
batch of n image-caption pairs into one space; after L2 normalisation the n x n cosine
similarities times a learned scale exp(t) are the logits of two n-way classifications, each
image among the captions and each caption among the images, whose cross-entropies are
averaged. t starts at log(1 / 0.07) and exp(t) is clamped at 100, as the paper does.

Its "labels" are the captions' token ids (`core.text.tokenize`), one row per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...core.text import TextTower
from ..distributed import gather
from .base import Method, loss_precision, register

INITIAL_TEMPERATURE = 0.07
MAX_SCALE = 100.0


def clip_loss(image_z: torch.Tensor, text_z: torch.Tensor,
              log_scale: torch.Tensor) -> torch.Tensor:
    """The symmetric contrastive loss of n pairs: row i of each is one pair."""
    image_z, text_z = F.normalize(image_z, dim=1), F.normalize(text_z, dim=1)
    logits = log_scale.exp().clamp(max=MAX_SCALE) * image_z @ text_z.T
    truth = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, truth) + F.cross_entropy(logits.T, truth)) / 2


@register
class CLIP(Method):
    name = "clip"

    def __init__(self, model, classes=0, **options):
        super().__init__(model, classes, **options)
        if not hasattr(model, "text"):  # a new model; a resumed one has its tower
            model.text = TextTower(model.projector_dim, self.buckets, self.context,
                                   self.text_dim, self.text_depth, self.text_heads)
            model.arch["text"] = model.text.arch
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / INITIAL_TEMPERATURE)))

    def view_configs(self, augment):
        """One view of each image, paired with its caption."""
        return [augment.view(0)]

    def forward(self, views, labels, progress):
        image_z = gather(self.model(views[0])[1].float())
        text_z = gather(self.model.text(labels).float())
        with loss_precision(image_z):
            return self.pair_loss(image_z, text_z)

    def pair_loss(self, image_z: torch.Tensor, text_z: torch.Tensor) -> torch.Tensor:
        """The loss of the batch's image and caption embeddings, row i one pair."""
        return clip_loss(image_z, text_z, self.log_scale)
