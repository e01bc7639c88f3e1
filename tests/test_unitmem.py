"""UnitMem (dejavu/onemodel/unitmem.py): the selectivity formula, streaming that equals the
whole computation, a known answer on images whose units' activations are known, and the
layers a config may ask for."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dejavu.onemodel import unitmem
from dejavu.training.augment import ViewAugment

pytestmark = pytest.mark.unit

IDENTITY = ViewAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                       grayscale_prob=0.0)


def test_selectivity_is_max_against_the_rest_and_zero_for_silent_units():
    got = unitmem.selectivity(np.array([3.0, 1.0, 0.0, 2.0]), np.array([1.0, 1.0, 0.0, 0.0]))
    np.testing.assert_allclose(got, [0.5, 0.0, 0.0, 1.0])


def test_streamed_tallies_equal_the_whole_matrix_ties_to_the_first_image():
    rng = np.random.default_rng(0)
    acts = rng.random((23, 6))
    acts[[4, 17], 2] = 5.0  # a tie: image 4 is seen first
    ids = np.arange(100, 123)
    tally = unitmem.Tally()
    for lo, hi in ((0, 5), (5, 6), (6, 16), (16, 23)):
        tally.add("block1", acts[lo:hi], ids[lo:hi])
        tally.n += hi - lo
    table = tally.table("target")
    mu_max = acts.max(axis=0)
    mu_rest = (acts.sum(axis=0) - mu_max) / 22
    np.testing.assert_allclose(table["mu_max"], mu_max, rtol=0, atol=1e-12)
    np.testing.assert_allclose(table["mu_rest"], mu_rest, rtol=1e-12)
    np.testing.assert_allclose(table["unitmem"], (mu_max - mu_rest) / (mu_max + mu_rest))
    assert table["top_id"].tolist() == (100 + acts.argmax(axis=0)).tolist()
    assert table.loc[2, "top_id"] == 104


class ChannelMeans(nn.Module):
    """A model whose backbone units are the image's channel means and whose projector units
    are twice them: activations known from the pixels."""

    def forward(self, x):
        h = x.mean(dim=(2, 3))
        return h, 2 * h

    def layer_modules(self, names):
        return {}


def test_a_unit_driven_by_one_image_alone_scores_its_known_selectivity():
    images = np.full((5, 8, 8, 3), 51, np.uint8)  # 0.2 in every channel
    images[3, :, :, 0] = 255                      # image 3 drives unit 0 alone (1.0)
    models = {"A": ChannelMeans(), "B": ChannelMeans()}
    table = unitmem.measure(models, images, np.arange(10, 15), ["backbone", "projector"],
                            view=IDENTITY, views=2, seed=0, device="cpu", batch_size=2)
    for model in ("target", "reference"):
        mine = table[(table["model"] == model)].set_index(["layer", "unit"])
        for layer, scale in (("backbone", 1), ("projector", 2)):
            assert mine.loc[(layer, 0), "mu_max"] == pytest.approx(scale * 1.0)
            assert mine.loc[(layer, 0), "mu_rest"] == pytest.approx(scale * 0.2)
            assert mine.loc[(layer, 0), "unitmem"] == pytest.approx(0.8 / 1.2)
            assert mine.loc[(layer, 0), "top_id"] == 13
            assert mine.loc[(layer, 1), "unitmem"] == pytest.approx(0.0, abs=1e-6)


def test_the_batch_size_changes_nothing_and_views_are_shared_by_both_models():
    from dejavu.core.models import SSLModel
    torch.manual_seed(0)
    model = SSLModel("convnet", [16, 8], width=4)
    images = np.random.default_rng(1).integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    layers = ["block1", "block2", "backbone", "hidden1"]
    tables = [unitmem.measure({"A": model, "B": model}, images, np.arange(9), layers,
                              view=ViewAugment(), views=3, seed=4, device="cpu",
                              batch_size=b) for b in (2, 9)]
    # float32 convolutions of 2 or 9 images round differently: 1e-6 apart, not more
    pd.testing.assert_frame_equal(tables[0], tables[1], rtol=1e-5)
    same = tables[0].set_index(["layer", "unit", "model"])["unitmem"].unstack("model")
    np.testing.assert_allclose(same["target"], same["reference"])  # one model, same draws
    assert set(tables[0]["layer"]) == set(layers)
    assert len(tables[0]) == 2 * (4 + 8 + 32 + 16)
    assert tables[0]["unitmem"].between(0, 1).all()


def test_a_layer_the_model_lacks_is_named_at_config_time():
    from test_config import problems
    assert "unitmem.layers: block4 - convnet has 4 stages" in problems(
        unitmem={"layers": ["block4"]})
