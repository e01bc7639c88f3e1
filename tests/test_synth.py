import pytest
import numpy as np

from dejavu.data.synth import SynthConfig, generate, mask_box, shape_mask

pytestmark = pytest.mark.unit


def test_generation_is_deterministic_and_seeded():
    cfg = SynthConfig(images_per_class=6, n_classes=4)
    a, ia = generate(cfg)
    b, ib = generate(cfg)
    np.testing.assert_array_equal(a, b)
    assert ia.equals(ib)
    c, _ = generate(SynthConfig(images_per_class=6, n_classes=4, seed=1))
    assert not np.array_equal(a, c)


def test_boxes_are_exact_object_extents():
    for shape in range(10):
        for side in (5, 10, 16):
            mask = shape_mask(shape, side)
            x0, y0, x1, y1 = mask_box(mask, 3, 4)
            assert mask[y0 - 4:y1 - 4, x0 - 3:x1 - 3].sum() == mask.sum()
            assert mask[:, x0 - 3].any() and mask[:, x1 - 4].any()


def test_index_and_scene_correlation():
    images, index = generate(SynthConfig(images_per_class=200, n_classes=10, correlation=0.5))
    assert images.shape == (2000, 32, 32, 3) and images.dtype == np.uint8
    preferred = (index["scene"] == index["label"]).mean()
    assert 0.5 < preferred < 0.6  # 0.5 preferred + 0.5 * 1/10 drawn uniformly
    sides = np.array([b[0][2] - b[0][0] for b in index["boxes"]])
    assert sides.min() >= 0.3 * 32 - 1 and sides.max() <= 0.5 * 32
