import pytest
import torch

from dejavu.training.augment import (AugmentConfig, ViewAugment, apply, color_jitter, crop_boxes,
                            gaussian_blur, grayscale, rotate_hue, sample, take)

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")
PLAIN = ViewAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                    grayscale_prob=0.0)


def draw(n, cfg, seed=0):
    return sample(n, cfg, torch.Generator().manual_seed(seed), CPU)


def test_full_crop_without_flip_is_identity():
    x = torch.rand(4, 3, 16, 16)
    torch.testing.assert_close(apply(x, draw(4, PLAIN), PLAIN), x, atol=1e-5, rtol=0)


def test_flip_only():
    x = torch.rand(2, 3, 8, 8)
    cfg = ViewAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=1.0, jitter_prob=0.0,
                      grayscale_prob=0.0)
    torch.testing.assert_close(apply(x, draw(2, cfg), cfg), x.flip(-1), atol=1e-5, rtol=0)


def test_each_image_gets_its_own_crop_inside_the_image():
    boxes = crop_boxes(500, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(0), CPU)
    cx, cy, w, h = boxes.T
    assert len(torch.unique(w)) > 400  # per-image draws, not one per batch
    assert (w <= 1).all() and (h <= 1).all()
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    area = w * h
    assert area.min() >= 0.08 - 1e-6 and area.max() <= 1 + 1e-6


def test_probabilities_are_per_image():
    p = draw(4000, ViewAugment(jitter_prob=0.8, grayscale_prob=0.2, blur_prob=0.5,
                               solarize_prob=0.2))
    for key, prob in (("jitter", 0.8), ("grayscale", 0.2), ("blur", 0.5), ("solarize", 0.2)):
        assert abs(p[key].float().mean().item() - prob) < 0.03, key
    assert len(torch.unique(p["brightness"])) > 3900


def test_same_seed_same_views_and_slices_match_the_whole_batch():
    x = torch.rand(6, 3, 16, 16)
    cfg = AugmentConfig().view(1)  # jitter, grayscale, blur and solarize all possible
    whole = apply(x, draw(6, cfg, seed=4), cfg)
    torch.testing.assert_close(whole, apply(x, draw(6, cfg, seed=4), cfg), rtol=0, atol=0)
    # what a data-parallel process does: draw for the global batch, apply its slice
    part = apply(x[2:5], take(draw(6, cfg, seed=4), slice(2, 5)), cfg)
    torch.testing.assert_close(part, whole[2:5], rtol=0, atol=1e-6)


def test_random_stream_does_not_depend_on_which_augmentations_are_on():
    a = draw(8, PLAIN, seed=1)
    b = draw(8, ViewAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0,
                            jitter_prob=1.0, blur_prob=1.0), seed=1)
    torch.testing.assert_close(a["sigma"], b["sigma"])


def test_brightness_contrast_saturation_known_answers():
    x = torch.full((1, 3, 4, 4), 0.25)
    x[0, 0] = 0.5
    one = torch.ones(1)
    out = color_jitter(x, 2 * one, one, one, 0 * one)          # brightness x2
    torch.testing.assert_close(out, (2 * x).clamp(0, 1))
    grey = grayscale(x).mean()
    out = color_jitter(x, one, 0 * one, one, 0 * one)          # contrast 0: the mean grey
    torch.testing.assert_close(out, torch.full_like(x, grey.item()))
    out = color_jitter(x, one, one, 0 * one, 0 * one)          # saturation 0: grey pixels
    torch.testing.assert_close(out, grayscale(x).expand_as(x))


def test_hue_rotation_keeps_grey_and_luma_and_a_full_turn_is_identity():
    x = torch.rand(3, 3, 5, 5) * 0.5 + 0.25
    turns = torch.tensor([0.1, -0.3, 0.25])
    torch.testing.assert_close(grayscale(rotate_hue(x, turns)), grayscale(x), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(rotate_hue(x, torch.ones(3)), x, atol=1e-5, rtol=0)
    grey = torch.full((1, 3, 2, 2), 0.4)
    torch.testing.assert_close(rotate_hue(grey, torch.tensor([0.2])), grey, atol=1e-6,
                               rtol=0)
    # a half turn moves red away from red
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 0.6
    assert rotate_hue(red, torch.tensor([0.5]))[0, 0, 0, 0] < 0.3


def test_blur_known_answer_per_image_sigma():
    x = torch.zeros(2, 3, 21, 21)
    x[:, :, 10, 10] = 1.0
    out = gaussian_blur(x, torch.tensor([0.1, 1.0]))
    assert out[0, 0, 10, 10] > 0.999            # tiny sigma: unchanged
    k = torch.exp(-torch.arange(-1.0, 2.0) ** 2 / 2)  # kernel 3 at 21 px, sigma 1
    k = k / k.sum()
    torch.testing.assert_close(out[1, 0, 9:12, 9:12], k[:, None] * k[None, :])
    assert out[1].sum(dim=(1, 2)).allclose(torch.ones(3))  # mass kept
    flat = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, torch.tensor([2.0])), flat)


def test_solarize_and_grayscale_where_drawn():
    x = torch.rand(2, 3, 6, 6)
    cfg = ViewAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                      grayscale_prob=1.0, solarize_prob=1.0)
    out = apply(x, draw(2, cfg), cfg)
    g = grayscale(x).expand_as(x)
    torch.testing.assert_close(out, torch.where(g >= 0.5, 1 - g, g), atol=1e-5, rtol=0)


def test_local_views_are_smaller():
    x = torch.rand(3, 3, 32, 32)
    cfg = AugmentConfig().view(1, scale=(0.05, 0.4), size=0.5)
    assert apply(x, draw(3, cfg), cfg).shape == (3, 3, 16, 16)


def test_unknown_augmentation_option_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation options"):
        AugmentConfig.from_options({"blurr_prob": [1, 1]})

