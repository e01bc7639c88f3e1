"""Embeddings along a model's depth (definitions §11): their names, their order and what a
config may ask for. Free of torch: the Snakefile checks the config with it.

`backbone` and `projector` are the model's two outputs. Before them:

- `block<i>`: the output of the backbone's i-th stage, average-pooled over space (ConvNet:
  conv block i; ResNet: `layer<i>`; ViT: Transformer block i, its class token). The last
  stage pooled is `backbone` itself, so i runs from 1 to the number of stages minus one.
- `hidden<i>`: the i-th hidden layer of the projector, after its ReLU; the last layer's
  output is `projector`, so i runs from 1 to the projector's depth minus one.

In depth order: block1, ..., backbone, hidden1, ..., projector.
"""

from __future__ import annotations

import re

OUTPUTS = ("backbone", "projector")  # what every embedding store holds
PATTERN = r"backbone|projector|block[1-9][0-9]*|hidden[1-9][0-9]*"
# Stages of each built-in backbone (dejavu.core.models keeps to these: a unit test compares)
STAGES = {"convnet": 4, **{f"resnet{d}": 4 for d in (18, 34, 50, 101)},
          "vit_mini": 6, "vit_tiny": 12, "vit_small": 12, "vit_base": 12}
_NAME = re.compile(r"(block|hidden)([1-9][0-9]*)")


def parse(name: str) -> tuple[str, int]:
    """("block", i), ("hidden", i), or (name, 0) for `backbone` and `projector`."""
    if name in OUTPUTS:
        return name, 0
    match = _NAME.fullmatch(name)
    if not match:
        raise ValueError(f"unknown embedding {name!r}: backbone, projector, block<i> or "
                         f"hidden<i>")
    return match.group(1), int(match.group(2))


def depth(name: str) -> tuple[int, int]:
    """A sort key: the order of embeddings from the input to the projector's output."""
    kind, i = parse(name)
    return {"block": 0, "backbone": 1, "hidden": 2, "projector": 3}[kind], i


def inner(names) -> list[str]:
    """The intermediate layers among `names` (neither output), in depth order, once each."""
    return sorted({n for n in names if n not in OUTPUTS}, key=depth)


def problems(names, backbones, projector_dims, key: str = "knn.embeddings") -> list[str]:
    """What is wrong with asking for the embeddings `names` of models with these backbones
    and projector: a stage or hidden layer the model does not have."""
    out = []
    for name in inner(names):
        kind, i = parse(name)
        if kind == "hidden" and i >= len(projector_dims):
            out.append(f"{key}: {name} - the projector {list(projector_dims)} has "
                       f"{max(len(projector_dims) - 1, 0)} hidden layers")
        for backbone in backbones if kind == "block" else ():
            stages = STAGES.get(backbone)
            if stages is None:
                out.append(f"{key}: {name} - per-stage embeddings need a built-in backbone "
                           f"({sorted(STAGES)}), not {backbone}")
            elif i >= stages:
                out.append(f"{key}: {name} - {backbone} has {stages} stages, the last of "
                           f"which is `backbone`: block1 to block{stages - 1}")
    return out


def width(name: str, backbone: str, model_width: int, projector_dims, features: int) -> int:
    """The size of embedding `name` of a model (`features`: its backbone output's size),
    without building it: what the memory formulas of the k-NN and index jobs read."""
    kind, i = parse(name)
    if kind == "backbone":
        return features
    if kind == "projector":
        return projector_dims[-1] if len(projector_dims) else features
    if kind == "hidden":
        return projector_dims[i - 1]
    if backbone == "convnet":
        return model_width * 2 ** (i - 1)
    if backbone.startswith("vit"):
        return features
    expansion = 4 if backbone in ("resnet50", "resnet101") else 1  # bottleneck blocks
    return 64 * expansion * 2 ** (i - 1)
