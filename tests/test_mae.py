"""Masked autoencoders (dejavu/training/methods/mae.py, dejavu/core/vit.py): the mask, the
patch order, the loss over removed patches, the decoder's token placement, training, the
settings it refuses, and SSLMem's masked views of an MAE encoder."""

import numpy as np
import pytest
import torch

from dejavu.core.models import SSLModel
from dejavu.core.vit import patchify, unpatchify, visible_patches
from dejavu.training.augment import AugmentConfig, ViewAugment, sample
from dejavu.training.methods import Progress, get, scoring_mask
from dejavu.training.methods.mae import masked_patch_loss

pytestmark = pytest.mark.unit

SMALL = {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 4}


def vit(side=16, pool="cls", seed=0):
    torch.manual_seed(seed)
    return SSLModel("vit_mini", [], image_size=side, patch_size=4, pool=pool)


@pytest.mark.parametrize("patches, ratio, kept", [(16, 0.75, 4), (64, 0.75, 16),
                                                  (10, 0.33, 7), (4, 0.99, 1)])
def test_the_mask_keeps_the_lowest_noise_patches_in_order(patches, ratio, kept):
    noise = torch.rand(5, patches, generator=torch.Generator().manual_seed(1))
    visible = visible_patches(noise, ratio)
    assert visible.shape == (5, kept)
    for row, noise_row in zip(visible, noise):
        assert row.tolist() == sorted(noise_row.argsort()[:kept].tolist())


def test_patches_are_numbered_as_the_patch_embedding_sees_them():
    x = torch.rand(2, 3, 12, 8)
    patches = patchify(x, 4)
    assert patches.shape == (2, 6, 48)
    for r in range(3):
        for c in range(2):
            block = x[:, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4].permute(0, 2, 3, 1)
            assert torch.equal(patches[:, 2 * r + c], block.reshape(2, 48))
    square = torch.rand(2, 3, 16, 16)
    assert torch.equal(unpatchify(patchify(square, 4), 4), square)


def test_seeing_every_patch_is_the_unmasked_encoder_and_fewer_change_it():
    model = vit().eval()
    x = torch.rand(3, 3, 16, 16)
    every = torch.arange(16).expand(3, -1)
    with torch.no_grad():
        whole, seen_all = model(x)[0], model(x, every)[0]
        masked = model(x, every[:, :4])[0]
    torch.testing.assert_close(seen_all, whole, rtol=0, atol=0)
    assert (masked - whole).abs().max() > 1e-3


def test_mean_pooling_averages_the_patch_tokens():
    model = vit(pool="mean").eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        states = model.backbone.tokens(model.normalize_input(x))
        torch.testing.assert_close(model(x)[0], states[:, 1:].mean(dim=1))
    assert model.arch["pool"] == "mean" and "pool" not in vit().arch


def test_the_loss_is_the_mean_squared_error_of_the_removed_patches_only():
    rng = np.random.default_rng(0)
    prediction, patches = rng.normal(size=(2, 4, 6)), rng.normal(size=(2, 4, 6))
    masked = np.array([[True, False, True, False], [False, False, False, True]])
    for norm in (False, True):
        want = []
        for i in range(2):
            errors = []
            for j in np.flatnonzero(masked[i]):
                target = patches[i, j]
                if norm:
                    target = (target - target.mean()) / np.sqrt(target.var(ddof=1) + 1e-6)
                errors.append(((prediction[i, j] - target) ** 2).mean())
            want.append(np.mean(errors))
        got = masked_patch_loss(torch.from_numpy(prediction), torch.from_numpy(patches),
                                torch.from_numpy(masked), norm)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_the_decoder_puts_encoder_tokens_at_their_patches_and_mask_tokens_elsewhere():
    mae = get("mae")(vit(), **SMALL)
    decoder = mae.decoder
    states = torch.randn(2, 1 + 3, 128)
    visible = torch.tensor([[0, 5, 9], [2, 3, 15]])
    seen = {}
    handle = decoder.blocks.register_forward_pre_hook(
        lambda module, args: seen.update(tokens=args[0].detach()))
    with torch.no_grad():
        out = decoder(states, visible, 16)
        embedded = decoder.embed(states)
    handle.remove()
    tokens = seen["tokens"] - decoder.position
    assert out.shape == (2, 16, 48)
    for i in range(2):
        torch.testing.assert_close(tokens[i, 0], embedded[i, 0])
        for k, patch in enumerate(visible[i].tolist()):
            torch.testing.assert_close(tokens[i, 1 + patch], embedded[i, 1 + k])
        hidden = [p for p in range(16) if p not in visible[i].tolist()]
        torch.testing.assert_close(tokens[i, [1 + p for p in hidden]],
                                   decoder.mask_token[0].expand(len(hidden), -1))


def test_training_lowers_the_reconstruction_loss_and_autocast_keeps_it():
    torch.manual_seed(0)
    mae = get("mae")(vit(), **SMALL)
    images = torch.rand(16, 3, 16, 16)
    augment = AugmentConfig.from_options(mae.augment)
    views = mae.make_views(images, augment, torch.Generator().manual_seed(0), slice(0, 16), 16)
    assert views[1].shape == (16, 16)  # the mask's noise, one per patch
    progress = Progress(0, 60, 1, 1)
    with torch.autocast("cpu", torch.bfloat16):
        mixed = mae(views, None, progress)
    first = mae(views, None, progress)
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(first.item(), rel=0.05)
    opt = torch.optim.AdamW(mae.parameters(), 3e-3)
    for _ in range(60):
        loss = mae(views, None, progress)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first.item()


def test_settings_mae_cannot_train_with_are_named():
    from dejavu.training.methods import info
    mae = info("mae")
    assert mae.check([512], 8, {}, ["vit_mini"]) == [
        "model.projector: mae trains no projector, set it to [] for mae (recipes: "
        "{mae: {model: {projector: []}}})"]
    assert mae.check([], 8, {}, ["convnet", "vit_tiny"]) == [
        "model.backbones: mae trains vit* backbones only, not convnet (train mae in a "
        "config of its own)"]
    assert mae.check([], 8, {}, ["vit_tiny"]) == []
    with pytest.raises(ValueError, match="mask_ratio"):
        get("mae")(vit(), mask_ratio=0.01, **SMALL)  # none of 16 patches removed
    with pytest.raises(ValueError, match="decoder_heads"):
        get("mae")(vit(), decoder_dim=30, decoder_depth=1, decoder_heads=4)
    with pytest.raises(ValueError, match="ViT"):
        get("mae")(SSLModel("convnet", [], width=4), **SMALL)


def test_sslmem_views_of_an_mae_are_masked_at_its_training_ratio():
    from dejavu.onemodel.sslmem import view_distances
    assert scoring_mask("mae", {}) == 0.75 and scoring_mask("mae", {"mask_ratio": 0.5}) == 0.5
    assert scoring_mask("vicreg", {"sim_coeff": 5.0}) == 0.0
    # the crop stream of a masked view is the unmasked view's; its noise is drawn after
    plain = ViewAugment(jitter_prob=0.0, grayscale_prob=0.0)
    masked = ViewAugment(jitter_prob=0.0, grayscale_prob=0.0, mask_ratio=0.75, mask_patches=16)
    a, b = (sample(6, v, torch.Generator().manual_seed(3), torch.device("cpu"))
            for v in (plain, masked))
    assert set(b) - set(a) == {"mask_noise"} and b["mask_noise"].shape == (6, 16)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # identity views: the unmasked model's views are the image itself (distance 0); the
    # masked views hide three patches in four, and the distances are the mask's alone
    identity = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                    grayscale_prob=0.0)
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    model = vit()
    still = view_distances(model, images, ViewAugment(**identity), 3, seed=0)
    moved = view_distances(model, images, ViewAugment(**identity, mask_ratio=0.75,
                                                      mask_patches=16), 3, seed=0)
    assert np.abs(still).max() < 1e-5
    assert moved.min() > 1e-3 and len(np.unique(moved.round(6))) == moved.size
