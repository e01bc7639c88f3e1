import pytest
import torch

from dejavu.training.methods.vicreg import (covariance_loss, invariance_loss, variance_loss,
                                   vicreg_loss)

pytestmark = pytest.mark.unit


def oracle(za, zb, lam=25.0, mu=25.0, nu=1.0):
    """VICReg written from the paper's equations, loop by loop."""
    n, d = za.shape
    s = sum(((za[i] - zb[i]) ** 2).sum() for i in range(n)) / (n * d)

    def v(z):
        return sum(max(0.0, 1 - float(torch.sqrt(z[:, j].var() + 1e-4))) for j in range(d)) / d

    def c(z):
        zc = z - z.mean(0)
        total = 0.0
        for a in range(d):
            for b in range(d):
                if a != b:
                    total += float((zc[:, a] * zc[:, b]).sum() / (n - 1)) ** 2
        return total / d

    return lam * float(s) + mu * (v(za) + v(zb)) / 2 + nu * (c(za) + c(zb))


def test_matches_oracle_on_small_batches():
    g = torch.Generator().manual_seed(0)
    for n, d in ((2, 3), (3, 5), (8, 4)):
        za, zb = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) * 0.3
        assert float(vicreg_loss(za, zb)) == pytest.approx(oracle(za, zb), rel=1e-5)


def test_terms():
    z = torch.randn(16, 4)
    assert float(invariance_loss(z, z)) == 0.0
    assert float(variance_loss(z * 100)) == 0.0  # wide spread: hinge inactive
    assert float(variance_loss(torch.zeros(16, 4))) == pytest.approx(1 - 1e-2, rel=1e-3)
    diag = torch.diag(torch.tensor([1.0, 2.0, 3.0]))
    assert float(covariance_loss(torch.cat([diag, -diag]))) == pytest.approx(0.0, abs=1e-6)


def test_symmetric_in_views():
    za, zb = torch.randn(6, 5), torch.randn(6, 5)
    assert float(vicreg_loss(za, zb)) == pytest.approx(float(vicreg_loss(zb, za)))


def test_batch_of_one_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        vicreg_loss(torch.randn(1, 4), torch.randn(1, 4))
