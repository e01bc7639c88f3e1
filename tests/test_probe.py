"""The linear probe's regression (dejavu.attack.probe.fit / accuracy) on sets whose answer is
known: separable classes are fitted exactly, the optimum is the one the gradient says, and
unlearnable labels give chance on new data."""

import numpy as np
import pytest
import torch

from dejavu.attack.probe import accuracy, fit

pytestmark = pytest.mark.unit


def blobs(n_per_class=40, classes=3, d=5, spread=0.3, seed=0, noise_seed=None):
    """Points around `classes` centres (drawn from `seed`); `noise_seed` draws other points
    around the same centres."""
    centres = np.random.default_rng(seed).normal(scale=3.0, size=(classes, d))
    rng = np.random.default_rng(seed if noise_seed is None else noise_seed + 1000)
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + spread * rng.normal(size=(len(y), d))).astype(np.float32), y


def test_linearly_separable_classes_are_fitted_and_generalise():
    x, y = blobs()
    model = fit(x, y, 3)
    assert accuracy(model, x, y) == 1.0
    assert accuracy(model, *blobs(n_per_class=100, noise_seed=1)) == 1.0


def test_the_fit_is_the_penalised_optimum():
    """At the L-BFGS solution the gradient of cross-entropy + (wd / 2)|W|^2 is ~0."""
    x, y = blobs(spread=2.0)  # overlapping classes: a finite optimum
    weight, bias, mean, scale = fit(x, y, 3, weight_decay=1e-2, steps=200)
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    z = (torch.as_tensor(x) - mean) / scale
    loss = torch.nn.functional.cross_entropy(z @ w.T + b, torch.as_tensor(y)) \
        + 0.5 * 1e-2 * w.pow(2).sum()
    loss.backward()
    assert float(w.grad.abs().max()) < 1e-4 and float(b.grad.abs().max()) < 1e-4


def test_features_are_standardised_so_their_scale_does_not_matter():
    x, y = blobs(spread=2.0)
    scaled = x * np.array([1e3, 1e-3, 1.0, 10.0, 0.1], dtype=np.float32)
    a, b = fit(x, y, 3), fit(scaled, y, 3)
    torch.testing.assert_close(a[0], b[0], rtol=1e-2, atol=1e-2)  # L-BFGS stops near it


def test_random_labels_are_memorised_but_do_not_generalise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 100)).astype(np.float32)  # more dimensions than images
    y = rng.integers(0, 2, 60)
    model = fit(x, y, 2, weight_decay=0.0, steps=300)
    assert accuracy(model, x, y) == 1.0  # the train-test gap the probe measures
    x_new = rng.normal(size=(2000, 100)).astype(np.float32)
    assert abs(accuracy(model, x_new, rng.integers(0, 2, 2000)) - 0.5) < 0.05
