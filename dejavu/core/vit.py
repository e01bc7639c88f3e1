"""Vision Transformers (Dosovitskiy et al., ICLR 2021), and the patch masking of masked
autoencoders (He et al., CVPR 2022) they can run with.

A `ViT` cuts an image into square patches, embeds each, adds learned position embeddings and
a class token, and runs pre-norm Transformer blocks. Its representation is the class token's
final state (`pool="cls"`) or the mean of the patch tokens' (`pool="mean"`).

Given `visible` (N, K) patch indices, only those K patches enter the blocks (the encoder of a
masked autoencoder); by default every patch does. Which patches are visible is decided by
ranking per-image noise (`visible_patches`): the noise is drawn by the caller from its own
generator, so a mask is as reproducible as any other augmentation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Sizes of DeiT (Touvron et al., 2021) and ViT-Base: (dim, depth, heads); vit_mini is
# dejavu's own, small enough to train on 32 px images on a CPU.
VIT_SIZES = {"vit_mini": (128, 6, 4), "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6),
             "vit_base": (768, 12, 12)}
POOLS = ("cls", "mean")


def transformer(dim: int, depth: int, heads: int, mlp_ratio: int = 4) -> nn.TransformerEncoder:
    """`depth` pre-norm blocks: attention and a GELU MLP, each behind a LayerNorm."""
    block = nn.TransformerEncoderLayer(dim, heads, dim * mlp_ratio, dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(block, depth, enable_nested_tensor=False)


def visible_patches(noise: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    """(N, K) indices of the patches kept, in increasing order, from (N, L) noise: the
    K = L - round(L * mask_ratio) patches of lowest noise (uniform noise: a uniformly random
    subset). At least one patch is kept."""
    patches = noise.shape[1]
    keep = max(1, patches - round(patches * mask_ratio))
    return noise.argsort(dim=1)[:, :keep].sort(dim=1).values


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tokens (N, L, D) at positions index (N, K) -> (N, K, D)."""
    return tokens.gather(1, index[:, :, None].expand(-1, -1, tokens.shape[2]))


class ViT(nn.Module):
    """Patch embedding, class token, learned position embeddings, pre-norm blocks, a final
    LayerNorm. Inputs of another side than `image_size` (multi-crop views) get bicubically
    interpolated position embeddings."""

    def __init__(self, image_size: int, patch_size: int, dim: int, depth: int, heads: int,
                 mlp_ratio: int = 4, pool: str = "cls"):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"ViT: image side {image_size} is not a multiple of the patch "
                             f"size {patch_size} (model.patch_size)")
        if pool not in POOLS:
            raise ValueError(f"ViT: pool {pool!r} is not one of {POOLS} (model.pool)")
        self.patch_size, self.grid, self.pool = patch_size, image_size // patch_size, pool
        self.patches = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, 1 + self.grid ** 2, dim) * 0.02)
        self.blocks = transformer(dim, depth, heads, mlp_ratio)
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

    def tokens(self, x: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """The final states (N, 1 + K, D) of the class token and the visible patches (all
        L patches when `visible` is None), after the last LayerNorm."""
        patches = self.patches(x)
        position = self.position_embedding(*patches.shape[2:])
        patches = patches.flatten(2).transpose(1, 2) + position[:, 1:]
        if visible is not None:
            patches = gather_tokens(patches, visible)
        cls = (self.cls_token + position[:, :1]).expand(len(x), -1, -1)
        return self.norm(self.blocks(torch.cat([cls, patches], dim=1)))

    def forward(self, x: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        states = self.tokens(x, visible)
        return states[:, 0] if self.pool == "cls" else states[:, 1:].mean(dim=1)


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, L, patch_size² C), patches in row-major order (as the ViT's
    patch embedding numbers them), each patch's pixels row-major with channels last."""
    n, c, h, w = x.shape
    p = patch_size
    x = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """The inverse of `patchify` for a square grid."""
    n, length, _ = patches.shape
    side, p = math.isqrt(length), patch_size
    x = patches.reshape(n, side, side, p, p, channels).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(n, channels, side * p, side * p)
