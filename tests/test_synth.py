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


def test_the_stage_writes_a_block_at_a_time_what_one_pass_generates(tmp_path, monkeypatch):
    """`run` holds one block of images and index rows at a time; the store and the index it
    writes are what `generate` makes whole, whatever the block size (one random stream in
    image order), here over 1,000 classes (ImageNet's count: hues alone tell them apart)."""
    import pandas as pd

    from dejavu.core.store import open_images, read_index
    from dejavu.data import synth
    cfg = SynthConfig(n_classes=1000, images_per_class=2, image_size=16, seed=4)
    images, index = generate(cfg)
    assert len(np.unique(index["label"])) == 1000
    monkeypatch.setattr(synth, "BLOCK", 256)  # 8 blocks, the last one short
    synth.run(str(tmp_path / "images.zarr"), str(tmp_path / "index.parquet"), classes=1000,
              images_per_class=2, image_size=16, correlation=cfg.correlation, seed=4)
    np.testing.assert_array_equal(open_images(tmp_path / "images.zarr")[:], images)
    written = pd.read_parquet(tmp_path / "index.parquet")
    pd.testing.assert_frame_equal(written.drop(columns=["boxes", "details"]),
                                  index.drop(columns=["boxes", "details"]))
    assert read_index(tmp_path / "index.parquet")["boxes"].tolist() == index["boxes"].tolist()
    assert [[list(drawn) for drawn in d] for d in written["details"]] == index["details"].tolist()
