"""VICReg: Bardes, Ponce, LeCun, *VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning*, ICLR 2022 (arXiv 2105.04906), eq. (1)-(6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import LossFunctionMethod, register


def invariance_loss(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """s(Z, Z'): mean squared distance between the two views' embeddings (N, D)."""
    return F.mse_loss(z_a, z_b)


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """v(Z): hinge on the per-dimension standard deviation, keeps each dimension alive."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """c(Z): squared off-diagonal covariances, divided by D, decorrelates dimensions."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def vicreg_loss(z_a: torch.Tensor, z_b: torch.Tensor, sim_coeff: float = 25.0,
                std_coeff: float = 25.0, cov_coeff: float = 1.0) -> torch.Tensor:
    """lambda s + mu [v(Z) + v(Z')] / 2 + nu [c(Z) + c(Z')], with the paper's 25 / 25 / 1.

    The variance term is averaged over the two branches as in the authors' reference
    implementation; the covariance term is summed.
    """
    if z_a.shape[0] < 2:
        raise ValueError("VICReg needs a batch of at least 2 (variance and covariance terms)")
    return (sim_coeff * invariance_loss(z_a, z_b)
            + std_coeff * (variance_loss(z_a) + variance_loss(z_b)) / 2
            + cov_coeff * (covariance_loss(z_a) + covariance_loss(z_b)))


@register
class VICReg(LossFunctionMethod):
    name = "vicreg"
    loss_fn = staticmethod(vicreg_loss)
