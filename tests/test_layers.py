"""Embeddings along depth (definitions §11): each intermediate embedding is the layer it
names, computed by hand; every built-in backbone has the stages the config check allows,
with the widths the memory formulas assume."""

import pytest
import torch
from torch import nn

from dejavu.core import layers
from dejavu.core.models import SSLModel

pytestmark = pytest.mark.unit


def model(backbone: str) -> SSLModel:
    torch.manual_seed(0)
    net = SSLModel(backbone, [24, 20, 16], width=4, small_stem=True, image_size=16,
                   patch_size=4).eval()
    for m in net.modules():  # BatchNorm statistics other than the initial ones
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net


def test_convnet_and_resnet_stages_and_projector_layers_equal_their_layers_by_hand():
    x = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        conv = model("convnet")
        got = conv.embed(x, ["block1", "block3", "hidden1", "hidden2", "backbone", "projector"])
        features = conv.backbone.features
        a = features[0](conv.normalize_input(x))
        torch.testing.assert_close(got["block1"], a.mean(dim=(2, 3)), rtol=0, atol=0)
        c = features[2](features[1](a))
        torch.testing.assert_close(got["block3"], c.mean(dim=(2, 3)), rtol=0, atol=0)
        h, z = conv(x)
        torch.testing.assert_close(got["backbone"], h, rtol=0, atol=0)
        torch.testing.assert_close(got["projector"], z, rtol=0, atol=0)
        p = conv.projector
        hidden1 = torch.relu(p[1](p[0](h)))
        torch.testing.assert_close(got["hidden1"], hidden1, rtol=0, atol=0)
        torch.testing.assert_close(got["hidden2"], torch.relu(p[4](p[3](hidden1))),
                                   rtol=0, atol=0)

        res = model("resnet18")
        net = res.backbone.net
        stem = net.maxpool(net.relu(net.bn1(net.conv1(res.normalize_input(x)))))
        two = net.layer2(net.layer1(stem))
        torch.testing.assert_close(res.embed(x, ["block2"])["block2"], two.mean(dim=(2, 3)),
                                   rtol=0, atol=0)


def test_a_vit_block_is_its_class_token_and_hooks_change_no_output():
    vit, x = model("vit_tiny"), torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        h, z = vit(x)
        got = vit.embed(x, ["block1", "block11", "backbone", "projector"])
        b = vit.backbone
        tokens = b.patches(vit.normalize_input(x)).flatten(2).transpose(1, 2)
        tokens = torch.cat([b.cls_token.expand(3, -1, -1), tokens], dim=1) + b.position
        first = b.blocks.layers[0](tokens)
    torch.testing.assert_close(got["block1"], first[:, 0], rtol=1e-5, atol=1e-6)
    assert torch.equal(got["backbone"], h) and torch.equal(got["projector"], z)
    assert not vit.backbone.blocks.layers[0]._forward_hooks  # hooks removed after use


@pytest.mark.parametrize("backbone", ["convnet", "resnet18", "resnet50", "vit_tiny"])
def test_every_allowed_stage_exists_with_the_width_the_formulas_assume(backbone):
    net, stages = model(backbone), layers.STAGES[backbone]
    names = [f"block{i}" for i in range(1, stages)] + ["hidden1", "hidden2", "backbone",
                                                        "projector"]
    assert layers.problems(names, [backbone], [24, 20, 16]) == []
    with torch.no_grad():
        got = net.embed(torch.rand(2, 3, 16, 16), names)
    for name in names:
        assert got[name].shape[1] == layers.width(name, backbone, 4, [24, 20, 16],
                                                  net.backbone.out_dim), name
    with pytest.raises(ValueError, match=f"block{stages}: the model has no such layer"):
        net.layer_modules([f"block{stages}"])
    assert f"block{stages}" in " ".join(layers.problems([f"block{stages}"], [backbone],
                                                        [24, 20, 16]))


def test_names_sort_input_to_output_and_bad_ones_are_named():
    names = ["projector", "hidden2", "backbone", "block10", "block2", "hidden1"]
    assert sorted(names, key=layers.depth) == ["block2", "block10", "backbone", "hidden1",
                                               "hidden2", "projector"]
    assert layers.inner(names + ["block2"]) == ["block2", "block10", "hidden1", "hidden2"]
    said = layers.problems(["hidden2", "block1"], ["convnet", "torchvision.resnet18"], [8, 4])
    assert said == ["knn.embeddings: block1 - per-stage embeddings need a built-in backbone "
                    f"({sorted(layers.STAGES)}), not torchvision.resnet18",
                    "knn.embeddings: hidden2 - the projector [8, 4] has 1 hidden layers"]
    with pytest.raises(ValueError, match="unknown embedding 'layer2'"):
        layers.parse("layer2")
