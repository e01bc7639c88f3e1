"""Encoders: a backbone (the representation used downstream) and a projector head.

`SSLModel.forward` takes uint8-range images and returns both embeddings, so embedding, k-NN
and training all see the same input normalisation.
"""

from __future__ import annotations

import torch
from torch import nn

# Inputs are scaled to [0, 1] and then centred with these; fixed so a checkpoint needs no
# dataset statistics to be used.
INPUT_MEAN, INPUT_STD = 0.5, 0.25


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class ConvNet(nn.Module):
    """Small CPU-friendly ConvNet (SPEC §8): `depth` conv blocks of width width·2^i, BatchNorm,
    max-pool, then global average pooling."""

    def __init__(self, width: int = 16, depth: int = 4):
        super().__init__()
        widths = [width * 2**i for i in range(depth)]
        self.features = nn.Sequential(*(conv_block(c_in, c_out)
                                        for c_in, c_out in zip([3] + widths[:-1], widths)))
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def projector(in_dim: int, dims: list[int]) -> nn.Sequential:
    """MLP head: Linear-BN-ReLU for every layer but the last, which is a bare Linear."""
    layers: list[nn.Module] = []
    for i, d in enumerate(dims):
        layers.append(nn.Linear(in_dim, d, bias=i == len(dims) - 1))
        if i < len(dims) - 1:
            layers += [nn.BatchNorm1d(d), nn.ReLU(inplace=True)]
        in_dim = d
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """A torchvision ResNet without its classifier, randomly initialised (no weights are
    downloaded). `small_stem` swaps the 7x7/2 convolution and max-pool for one 3x3/1
    convolution, the usual choice for images of 64 px and below (CIFAR-style)."""

    def __init__(self, depth: int, small_stem: bool = False):
        super().__init__()
        import torchvision
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        if small_stem:
            net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


BACKBONES = {
    "convnet": lambda width, small_stem: ConvNet(width=width),
    **{f"resnet{d}": (lambda width, small_stem, d=d: ResNet(d, small_stem))
       for d in (18, 34, 50, 101)},
}


class SSLModel(nn.Module):
    def __init__(self, backbone: str = "convnet", projector_dims: list[int] = (512, 512, 512),
                 width: int = 16, small_stem: bool = True):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; known: {sorted(BACKBONES)}")
        if len(projector_dims) == 0:
            raise ValueError("projector needs at least one layer")
        self.backbone = BACKBONES[backbone](width=width, small_stem=small_stem)
        self.projector = projector(self.backbone.out_dim, list(projector_dims))
        self.arch = {"backbone": backbone, "projector_dims": list(projector_dims), "width": width,
                     "small_stem": small_stem}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, 3, H, W) floats in [0, 1] -> backbone (N, Db), projector (N, Dp)."""
        h = self.backbone((x - INPUT_MEAN) / INPUT_STD)
        return h, self.projector(h)


def save_checkpoint(path: str, model: SSLModel, **extra) -> None:
    torch.save({"arch": model.arch, "state_dict": model.state_dict(), **extra}, path)


def load_checkpoint(path: str, map_location="cpu") -> tuple[SSLModel, dict]:
    """Rebuild a model from a checkpoint; weights-only loading (safe for untrusted files)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    model = SSLModel(**ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt


def pick_device(device: str = "auto") -> torch.device:
    """"auto" is CUDA when available, else CPU; anything else is taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
