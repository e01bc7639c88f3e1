import torch

from dejavu.augment import AugmentConfig, crop_boxes, random_resized_crop_flip


def test_full_crop_without_flip_is_identity():
    x = torch.rand(4, 3, 16, 16)
    cfg = AugmentConfig(scale_min=1.0, scale_max=1.0, ratio_min=1.0, ratio_max=1.0,
                        flip_prob=0.0)
    out = random_resized_crop_flip(x, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_flip_only():
    x = torch.rand(2, 3, 8, 8)
    cfg = AugmentConfig(scale_min=1.0, scale_max=1.0, ratio_min=1.0, ratio_max=1.0,
                        flip_prob=1.0)
    out = random_resized_crop_flip(x, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_each_image_gets_its_own_crop_inside_the_image():
    boxes = crop_boxes(500, AugmentConfig(), torch.Generator().manual_seed(0), torch.device("cpu"))
    cx, cy, w, h = boxes.T
    assert len(torch.unique(w)) > 400  # per-image draws, not one per batch
    assert (w <= 1).all() and (h <= 1).all()
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    area = w * h
    assert area.min() >= 0.08 - 1e-6 and area.max() <= 1 + 1e-6


def test_same_seed_same_views():
    x = torch.rand(3, 3, 16, 16)
    a = random_resized_crop_flip(x, AugmentConfig(), torch.Generator().manual_seed(4))
    b = random_resized_crop_flip(x, AugmentConfig(), torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
