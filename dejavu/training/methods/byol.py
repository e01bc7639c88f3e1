"""BYOL: Grill et al., *Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning*, NeurIPS 2020 (arXiv 2006.07733), eq. (2) and the target update of section 3.1."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
import torch.nn.functional as F

from ..distributed import gather
from ...core.models import projector
from .base import Method, loss_precision, register


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z): the online
    prediction p against the target projection z (no gradient through z)."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


def target_momentum(step: int, total_steps: int, base: float) -> float:
    """tau = 1 - (1 - tau_base) (cos(pi k / (K - 1)) + 1) / 2 at step k of K: from tau_base
    at the first step to 1 at the last, and 1 from then on (or for a run of one step)."""
    if total_steps <= 1 or step >= total_steps - 1:
        return 1.0
    return 1.0 - (1.0 - base) * (math.cos(math.pi * step / (total_steps - 1)) + 1) / 2


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- tau target + (1 - tau) online, parameter by parameter (buffers such as
    BatchNorm statistics are the target's own)."""
    for theirs, ours in zip(target.parameters(), online.parameters()):
        theirs.mul_(tau).add_(ours, alpha=1.0 - tau)


@register
class BYOL(Method):
    """Online encoder + predictor regresses a momentum (EMA) copy of the encoder; the loss is
    symmetrised over the two views. The online encoder is what is saved."""
    name = "byol"

    def __init__(self, model, classes=0, **options):
        super().__init__(model, classes, **options)
        out = model.arch["projector_dims"][-1]
        self.predictor = projector(out, [self.predictor_hidden, out])
        self.target = copy.deepcopy(model).requires_grad_(False)

    def forward(self, views, labels, progress):
        online = [self.model(v)[1] for v in views]
        with torch.no_grad():
            target = [self.target(v)[1] for v in views]
        p = [gather(self.predictor(z).float()) for z in online]
        z = [gather(t.float()) for t in target]
        with loss_precision(p[0]):
            return byol_loss(p[0], z[1]) + byol_loss(p[1], z[0])

    @torch.no_grad()
    def after_step(self, progress):
        momentum_update(self.model, self.target,
                        target_momentum(progress.step, progress.total_steps, self.momentum))
