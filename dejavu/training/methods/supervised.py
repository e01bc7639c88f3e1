"""The supervised baseline of the paper: the same encoder and augmentations, trained with
cross-entropy on the class labels (a linear classifier on the projector output)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..distributed import gather
from .base import Method, loss_precision, register


@register
class Supervised(Method):
    name = "supervised"

    def __init__(self, model, classes=0, **options):
        super().__init__(model, classes, **options)
        if classes < 2:
            raise ValueError(f"the supervised baseline needs at least 2 classes, got {classes}")
        self.classifier = nn.Linear(model.arch["projector_dims"][-1], classes)

    def forward(self, views, labels, progress):
        logits = [gather(self.classifier(self.model(v)[1]).float()) for v in views]
        labels = gather(labels[:, None])[:, 0]
        with loss_precision(logits[0]):
            return sum(F.cross_entropy(lg, labels, label_smoothing=self.label_smoothing)
                       for lg in logits) / len(logits)
