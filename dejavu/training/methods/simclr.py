"""SimCLR's NT-Xent loss: Chen, Kornblith, Norouzi, Hinton, *A Simple Framework for
Contrastive Learning of Visual Representations*, ICML 2020 (arXiv 2002.05709), eq. (1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import LossFunctionMethod, register


def nt_xent_loss(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.15) -> torch.Tensor:
    """Mean over the 2N views of -log softmax similarity of each view to its positive.

    Each view's candidates are the other 2N - 1 views (itself excluded); similarities are
    cosines divided by the temperature (the déjà vu paper uses 0.15)."""
    if z_a.shape[0] < 2:
        raise ValueError("NT-Xent needs a batch of at least 2 (negatives come from the batch)")
    n = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


@register
class SimCLR(LossFunctionMethod):
    name = "simclr"
    loss_fn = staticmethod(nt_xent_loss)
