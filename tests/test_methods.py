"""SimCLR and Barlow Twins losses against their papers' formulas written loop by loop."""

import math

import pytest
import torch

from dejavu.methods import METHODS
from dejavu.methods.barlow_twins import barlow_twins_loss
from dejavu.methods.simclr import nt_xent_loss


def nt_xent_oracle(za, zb, tau):
    z = torch.cat([za, zb])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        sims = [math.exp(float(z[i] @ z[k]) / tau) for k in range(n2) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / sum(sims))
    return total / n2


def barlow_oracle(za, zb, lam):
    n, d = za.shape
    a = (za - za.mean(0)) / za.std(0, unbiased=False)
    b = (zb - zb.mean(0)) / zb.std(0, unbiased=False)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = float(sum(a[k, i] * b[k, j] for k in range(n))) / n
            loss += (1 - c) ** 2 if i == j else lam * c ** 2
    return loss


@pytest.mark.parametrize("n, d", [(2, 3), (4, 5), (7, 2)])
def test_nt_xent_matches_oracle(n, d):
    g = torch.Generator().manual_seed(n * d)
    za, zb = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert float(nt_xent_loss(za, zb, 0.15)) == pytest.approx(nt_xent_oracle(za, zb, 0.15),
                                                              rel=1e-4)


@pytest.mark.parametrize("n, d", [(3, 3), (6, 4)])
def test_barlow_twins_matches_oracle(n, d):
    g = torch.Generator().manual_seed(n + d)
    za, zb = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert float(barlow_twins_loss(za, zb, 0.0051)) == pytest.approx(
        barlow_oracle(za, zb, 0.0051), rel=1e-3)


def test_aligned_views_score_better_than_random_ones():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g)
    other = torch.randn(16, 8, generator=g)
    for name, loss in METHODS.items():
        assert float(loss(z, z + 0.01 * other)) < float(loss(z, other)), name


@pytest.mark.parametrize("name", sorted(METHODS))
def test_batch_of_one_is_refused(name):
    with pytest.raises(ValueError, match="at least 2"):
        METHODS[name](torch.randn(1, 4), torch.randn(1, 4))
