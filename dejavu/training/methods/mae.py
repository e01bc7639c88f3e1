"""Masked autoencoders: He et al., *Masked Autoencoders Are Scalable Vision Learners*,
CVPR 2022 (arXiv 2111.06377), section 3.

Each image is cut into patches and most of them (`mask_ratio`) are removed at random; the ViT
encoder sees only the rest, and a light Transformer decoder, given the encoder's tokens and a
shared mask token at every removed position, predicts the removed patches' pixels. The loss
is the mean squared error over the removed patches only, against each patch's pixels
normalised by its own mean and variance (`norm_pix_loss`, the paper's better target) or
against the input's pixels.

The encoder saved and attacked is the ViT alone (no projector: `model.projector: []`); every
later stage runs it on whole images, unmasked. The decoder's position embeddings are learned
here (the paper fixes them to sines and cosines). The mask is drawn like any augmentation,
from the training loop's generator, for the global batch.
"""

from __future__ import annotations

import torch
from torch import nn

from ...core.vit import ViT, patchify, transformer, visible_patches
from ..augment import apply, sample, take
from ..distributed import gather
from .base import Method, loss_precision, register


def masked_patch_loss(prediction: torch.Tensor, patches: torch.Tensor, masked: torch.Tensor,
                      norm_pix_loss: bool = True) -> torch.Tensor:
    """Per image (N,), the mean over its removed patches (`masked` (N, L) true) of the
    squared error between predicted and true patch pixels (N, L, P); with `norm_pix_loss`
    each true patch is first standardised by its own pixels' mean and variance."""
    if norm_pix_loss:
        mean = patches.mean(dim=-1, keepdim=True)
        var = patches.var(dim=-1, keepdim=True)
        patches = (patches - mean) / (var + 1e-6).sqrt()
    per_patch = (prediction - patches).pow(2).mean(dim=-1)
    masked = masked.to(per_patch.dtype)
    return (per_patch * masked).sum(dim=1) / masked.sum(dim=1)


class Decoder(nn.Module):
    """The encoder's tokens put back at their patches' positions among mask tokens, position
    embeddings added, `depth` Transformer blocks, then each patch's pixels."""

    def __init__(self, encoder_dim: int, patches: int, patch_pixels: int, dim: int,
                 depth: int, heads: int):
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, 1 + patches, dim) * 0.02)
        self.blocks = transformer(dim, depth, heads)
        self.norm = nn.LayerNorm(dim)
        self.predict = nn.Linear(dim, patch_pixels)

    def forward(self, states: torch.Tensor, visible: torch.Tensor, patches: int) -> torch.Tensor:
        """states (N, 1 + K, D) of the class token and visible patches -> (N, L, P)."""
        states = self.embed(states)
        n, dim = len(states), states.shape[2]
        grid = self.mask_token.to(states.dtype).expand(n, patches, dim)
        grid = grid.scatter(1, visible[:, :, None].expand(-1, -1, dim), states[:, 1:])
        tokens = torch.cat([states[:, :1], grid], dim=1) + self.position
        return self.predict(self.norm(self.blocks(tokens)))[:, 1:]


@register
class MAE(Method):
    name = "mae"

    def __init__(self, model, classes=0, **options):
        super().__init__(model, classes, **options)
        vit = model.backbone
        if not isinstance(vit, ViT):
            raise ValueError(f"mae trains a ViT backbone, not {model.arch['backbone']}")
        if len(model.arch["projector_dims"]):
            raise ValueError("mae trains no projector: set model.projector to [] for it")
        if not 1 <= round(vit.grid ** 2 * self.mask_ratio) < vit.grid ** 2:
            raise ValueError(f"train.loss.mae.mask_ratio: {self.mask_ratio} of "
                             f"{vit.grid ** 2} patches removes none or all of them")
        if self.decoder_dim % self.decoder_heads:
            raise ValueError(f"train.loss.mae.decoder_heads: {self.decoder_heads} does not "
                             f"divide decoder_dim {self.decoder_dim}")
        self.decoder = Decoder(vit.out_dim, vit.grid ** 2, 3 * vit.patch_size ** 2,
                               self.decoder_dim, self.decoder_depth, self.decoder_heads)

    def view_configs(self, augment):
        """One view per image (the paper's crop and flip) with its patch mask."""
        return [augment.view(0, mask_ratio=self.mask_ratio,
                             mask_patches=self.model.backbone.grid ** 2)]

    def make_views(self, x, augment, generator, rows, n_global):
        """[the view, (n, L) uniform noise ranking its patches for the mask]."""
        cfg = self.view_configs(augment)[0]
        params = take(sample(n_global, cfg, generator, x.device), rows)
        return [apply(x, params, cfg), params["mask_noise"]]

    def forward(self, views, labels, progress):
        images, noise = views
        vit = self.model.backbone
        x = self.model.normalize_input(images)
        visible = visible_patches(noise, self.mask_ratio)
        prediction = self.decoder(vit.tokens(x, visible), visible, noise.shape[1])
        masked = torch.ones_like(noise, dtype=torch.bool).scatter(1, visible, False)
        with loss_precision(prediction):
            per_image = masked_patch_loss(prediction.float(), patchify(x.float(), vit.patch_size),
                                          masked, self.norm_pix_loss)
            return gather(per_image[:, None]).mean()
