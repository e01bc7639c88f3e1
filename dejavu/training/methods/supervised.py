"""The supervised baseline of the paper: the same encoder and augmentations, trained with
cross-entropy on the class labels by a classifier head on the projector output -- as the
paper's released code builds it, BatchNorm, ReLU and a linear layer (`head:
bn_relu_linear`), so that the projector output, which the attack reads, is not one linear
map from the logits; `head: linear` is a bare linear layer."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..distributed import gather
from .base import Method, loss_precision, register


HEADS = ("bn_relu_linear", "linear")


@register
class Supervised(Method):
    name = "supervised"

    def __init__(self, model, classes=0, **options):
        super().__init__(model, classes, **options)
        if classes < 2:
            raise ValueError(f"the supervised baseline needs at least 2 classes, got {classes}")
        dims = model.arch["projector_dims"][-1]
        if self.head not in HEADS:
            raise ValueError(f"train.loss.supervised.head: {self.head!r} is not one of {HEADS}")
        self.classifier = (nn.Linear(dims, classes) if self.head == "linear" else
                           nn.Sequential(nn.BatchNorm1d(dims), nn.ReLU(),
                                         nn.Linear(dims, classes)))

    def forward(self, views, labels, progress):
        logits = [gather(self.classifier(self.model(v)[1]).float()) for v in views]
        labels = gather(labels[:, None])[:, 0]
        with loss_precision(logits[0]):
            return sum(F.cross_entropy(lg, labels, label_smoothing=self.label_smoothing)
                       for lg in logits) / len(logits)
