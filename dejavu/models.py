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
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2, ceil_mode=True))  # ceil: small multi-crop views


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


class ViT(nn.Module):
    """A small Vision Transformer (Dosovitskiy et al., ICLR 2021): patch embedding, a class
    token, learned position embeddings, pre-norm Transformer blocks; the class token's final
    state is the representation. Inputs of another size than `image_size` (multi-crop
    views) get bicubically interpolated position embeddings."""

    def __init__(self, image_size: int, patch_size: int, dim: int, depth: int, heads: int,
                 mlp_ratio: int = 4):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"ViT: image side {image_size} is not a multiple of the patch "
                             f"size {patch_size} (model.patch_size)")
        self.patch_size, self.grid = patch_size, image_size // patch_size
        self.patches = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, 1 + self.grid ** 2, dim) * 0.02)
        block = nn.TransformerEncoderLayer(dim, heads, dim * mlp_ratio, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.position
        cls, grid = self.position[:, :1], self.position[:, 1:]
        grid = grid.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid, size=(grid_h, grid_w), mode="bicubic",
                                         align_corners=False)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x)
        grid_h, grid_w = tokens.shape[2:]
        tokens = tokens.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        tokens = self.blocks(tokens + self.position_embedding(grid_h, grid_w))
        return self.norm(tokens[:, 0])


# ViT sizes of DeiT (Touvron et al., 2021): (dim, depth, heads)
VIT_SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6)}

BACKBONES = {
    "convnet": lambda width, small_stem, image_size, patch_size: ConvNet(width=width),
    **{f"resnet{d}": (lambda width, small_stem, image_size, patch_size, d=d:
                      ResNet(d, small_stem))
       for d in (18, 34, 50, 101)},
    **{name: (lambda width, small_stem, image_size, patch_size, size=size:
              ViT(image_size, patch_size, *size))
       for name, size in VIT_SIZES.items()},
}


class SSLModel(nn.Module):
    def __init__(self, backbone: str = "convnet", projector_dims: list[int] = (512, 512, 512),
                 width: int = 16, small_stem: bool = True, image_size: int = 32,
                 patch_size: int = 4):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; known: {sorted(BACKBONES)}")
        if len(projector_dims) == 0:
            raise ValueError("projector needs at least one layer")
        self.backbone = BACKBONES[backbone](width=width, small_stem=small_stem,
                                            image_size=image_size, patch_size=patch_size)
        self.projector = projector(self.backbone.out_dim, list(projector_dims))
        self.arch = {"backbone": backbone, "projector_dims": list(projector_dims), "width": width,
                     "small_stem": small_stem, "image_size": image_size,
                     "patch_size": patch_size}

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
