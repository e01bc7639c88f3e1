"""Barlow Twins: Zbontar, Jing, Misra, LeCun, Deny, *Barlow Twins: Self-Supervised Learning
via Redundancy Reduction*, ICML 2021 (arXiv 2103.03230), eq. (1)-(2)."""

from __future__ import annotations

import torch

from .base import LossFunctionMethod, register


def cross_correlation(z_a: torch.Tensor, z_b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """C (D, D): correlation of the batch-standardised embeddings of the two views."""
    n = z_a.shape[0]
    a = (z_a - z_a.mean(0)) / (z_a.std(0, unbiased=False) + eps)
    b = (z_b - z_b.mean(0)) / (z_b.std(0, unbiased=False) + eps)
    return a.T @ b / n


def barlow_twins_loss(z_a: torch.Tensor, z_b: torch.Tensor,
                      lambda_offdiag: float = 0.0051) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2: invariance on the diagonal,
    redundancy reduction off it (lambda = 0.0051 as in the paper)."""
    if z_a.shape[0] < 2:
        raise ValueError("Barlow Twins needs a batch of at least 2 (batch statistics)")
    c = cross_correlation(z_a, z_b)
    on_diag = (1 - torch.diagonal(c)).pow(2).sum()
    off_diag = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on_diag + lambda_offdiag * off_diag


@register
class BarlowTwins(LossFunctionMethod):
    name = "barlow_twins"
    loss_fn = staticmethod(barlow_twins_loss)
