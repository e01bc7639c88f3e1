import itertools

import numpy as np
import pytest
import torch

from dejavu.data.crops import (Rect, corner_crop, crop_resize, largest_free_rect, object_box,
                          periphery_crop, plan_crops)
from dejavu.core.store import resize_square

pytestmark = pytest.mark.unit


def brute_force(boxes, h, w, criterion="side"):
    """Every integer rectangle of the image, checked pixel by pixel."""
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        covered[max(y0, 0):y1, max(x0, 0):x1] = True
    # cumulative sums give the covered-pixel count of any rectangle in O(1)
    cum = np.pad(covered.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, best_key = None, None
    for y0, y1 in itertools.combinations(range(h + 1), 2):
        for x0, x1 in itertools.combinations(range(w + 1), 2):
            if cum[y1, x1] - cum[y0, x1] - cum[y1, x0] + cum[y0, x0]:
                continue
            side, area = min(x1 - x0, y1 - y0), (x1 - x0) * (y1 - y0)
            key = ((side, area) if criterion == "side" else (area, side)) + (-y0, -x0, -y1)
            if best_key is None or key > best_key:
                best, best_key = Rect(x0, y0, x1, y1), key
    return best


def random_boxes(rng, h, w, n):
    boxes = []
    for _ in range(n):
        x0, x1 = sorted(rng.integers(0, w + 1, size=2))
        y0, y1 = sorted(rng.integers(0, h + 1, size=2))
        if x1 > x0 and y1 > y0:
            boxes.append([int(x0), int(y0), int(x1), int(y1)])
    return boxes or [[0, 0, 1, 1]]


@pytest.mark.parametrize("criterion", ["side", "area"])
def test_exact_crop_matches_brute_force_on_random_boxes(criterion):
    rng = np.random.default_rng(0)
    for trial in range(150):
        h, w = (int(v) for v in rng.integers(3, 13, size=2))
        boxes = random_boxes(rng, h, w, int(rng.integers(1, 5)))
        assert largest_free_rect(boxes, h, w, criterion) == brute_force(boxes, h, w, criterion), \
            (trial, boxes, h, w)


def test_crop_never_touches_a_box_and_box_edges_are_half_open():
    # box covers columns 4..7 exactly; the free strip right of it starts at x = 8
    rect = largest_free_rect([[4, 0, 8, 10]], 10, 20)
    assert rect == Rect(8, 0, 20, 10)


def test_fully_covered_image_has_no_crop():
    assert largest_free_rect([[0, 0, 10, 10]], 10, 10) is None
    rect, reason = periphery_crop([[0, 0, 10, 10]], 10, 10, min_side=1)
    assert rect is None and "whole image" in reason


def test_small_crop_is_rejected_with_reason():
    rect, reason = periphery_crop([[2, 2, 30, 30]], 32, 32, min_side=8)
    assert rect is None and "min_side 8" in reason and "shorter side 2" in reason
    rect, reason = periphery_crop([], 32, 32, min_side=8)
    assert rect is None and reason == "no bounding box"


def test_ties_prefer_smaller_y_then_x():
    # a centred box leaves four equal strips; top strip (y0 = 0) wins over bottom
    rect = largest_free_rect([[0, 10, 30, 20]], 30, 30)
    assert rect == Rect(0, 0, 30, 10)


def test_corner_crop():
    assert corner_crop(100, 200, 0.3, "top-left") == Rect(0, 0, 60, 30)
    assert corner_crop(100, 200, 0.3, "bottom-right") == Rect(140, 70, 200, 100)
    with pytest.raises(ValueError, match="corner"):
        corner_crop(10, 10, 0.3, "middle")


def test_object_box_is_union():
    assert object_box([[1, 2, 5, 6], [3, 0, 9, 4]]) == Rect(1, 0, 9, 6)


def test_resize_keeps_aspect_by_centre_crop():
    # a 4x16 strip with a left/right ramp: after resizing the short side to 8 and centre
    # cropping, the middle columns survive
    x = torch.arange(16.0).repeat(4, 1)[None, None]
    out = resize_square(x, 8)
    assert out.shape == (1, 1, 8, 8)
    assert 4 < out.mean() < 11


def test_crop_resize_uint8_shape_and_values():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    out = crop_resize(image, Rect(0, 0, 16, 32), 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out.max() == 0  # the crop saw only the black half


def test_plan_records_rejects():
    import pandas as pd
    attacked = pd.DataFrame({"id": ["a", "b"], "row": [0, 1], "boxes": [[[0, 0, 30, 30]],
                                                                        [[0, 0, 4, 4]]],
                             "height": [32, 32], "width": [32, 32]})
    plan = plan_crops(attacked, "periphery", min_side=8)
    assert list(plan["valid"]) == [False, True]
    assert "min_side" in plan.loc[0, "reason"]
    corner = plan_crops(attacked, "corner", min_side=8)
    assert corner["valid"].all()


def test_the_stage_writes_its_crops_a_block_at_a_time_as_one_crop_at_a_time(tmp_path,
                                                                          monkeypatch):
    """Blocks of 5 crops (the stage holds one block, not the set), over store rows that are
    not in order: each crop equals crop_resize of its own stored image and plan rectangle."""
    from dejavu.core.store import open_images
    from dejavu.data import crops, split, synth
    import pandas as pd
    monkeypatch.setattr(crops, "BLOCK_ROWS", 5)
    synth.run(str(tmp_path / "images.zarr"), str(tmp_path / "index.parquet"), classes=3,
              images_per_class=12, image_size=24, correlation=0.5, seed=0)
    split.run(str(tmp_path / "index.parquet"), str(tmp_path / "split.parquet"),
              str(tmp_path / "sizes.csv"), npc=3, public_test_per_class=1, seed=0)
    crops.run(str(tmp_path / "images.zarr"), str(tmp_path / "index.parquet"),
              str(tmp_path / "split.parquet"), str(tmp_path / "crops.zarr"),
              str(tmp_path / "crops.parquet"), mode="periphery", side=8, min_side=3)
    plan = pd.read_parquet(tmp_path / "crops.parquet")
    made = open_images(tmp_path / "crops.zarr")[:]
    images, valid = open_images(tmp_path / "images.zarr"), plan[plan["valid"]]
    assert len(valid) > 2 * 5 and made.shape == (len(valid), 8, 8, 3)
    assert not valid["row"].is_monotonic_increasing  # blocks read rows out of order
    assert valid["crop_row"].tolist() == list(range(len(valid)))
    for (_, row), crop in zip(valid.iterrows(), made):
        rect = Rect(*(int(row[c]) for c in ("x0", "y0", "x1", "y1")))
        assert np.array_equal(crop, crop_resize(images[int(row["row"])], rect, 8))
