import numpy as np
import pandas as pd
import pytest

from dejavu.data.split import SplitConfig, check_disjoint, make_split, split_sizes

pytestmark = pytest.mark.unit


def pool(n_classes=3, per_class=60, box_share=1.0, seed=0):
    rng = np.random.default_rng(seed)
    n = n_classes * per_class
    return pd.DataFrame({
        "id": [f"img{i:04d}" for i in range(n)],
        "label": np.repeat(np.arange(n_classes), per_class),
        "boxes": [[[0, 0, 2, 2]] if rng.random() < box_share else [] for _ in range(n)],
        "height": 8, "width": 8,
    })


def sets(split, name):
    return set(split.loc[split["set"] == name, "id"])


def test_all_boxed_pool_sizes_and_disjointness():
    split = make_split(pool(), SplitConfig(npc=10, public_test_per_class=5, seed=1))
    check_disjoint(split)
    for name, per_class in {"A": 10, "B": 10, "heldout": 20, "public_test": 5,
                            "public": 60 - 45}.items():
        assert len(sets(split, name)) == 3 * per_class, name
    attacked = split[split["attacked"]]
    assert set(attacked["set"]) == {"A", "B", "heldout"}
    assert len(attacked) == 120
    fraction = make_split(pool(), SplitConfig(npc=10, heldout_fraction=0.25, seed=1))
    assert len(sets(fraction, "heldout")) == 3 * 15


def test_box_less_images_are_shared_by_a_and_b():
    index = pool(per_class=80, box_share=0.4, seed=2)
    split = make_split(index, SplitConfig(npc=20, heldout_fraction=0.0, seed=0))
    check_disjoint(split)
    shared = sets(split, "A") & sets(split, "B")
    assert shared, "expected box-less images in both A and B"
    boxed = set(index.loc[[len(b) > 0 for b in index["boxes"]], "id"])
    assert not shared & boxed
    assert not shared & set(split.loc[split["attacked"], "id"])
    sizes = split_sizes(split)
    assert (sizes["A"] == 20).all() and (sizes["B"] == 20).all()


def test_a_dataset_without_boxes_can_be_attacked_with_corner_crops():
    index = pool(per_class=40, box_share=0.0)
    plain = make_split(index, SplitConfig(npc=10, heldout_fraction=0.0))
    assert not plain["attacked"].any()  # nothing to attack: A and B share every image
    split = make_split(index, SplitConfig(npc=10, heldout_fraction=0.0, attack_boxless=True))
    check_disjoint(split)
    assert not sets(split, "A") & sets(split, "B")
    assert split.loc[split["set"].isin(["A", "B"]), "attacked"].all()


def test_same_seed_same_split_regardless_of_row_order():
    index = pool()
    a = make_split(index, SplitConfig(npc=10, seed=5))
    shuffled = index.sample(frac=1, random_state=0).reset_index(drop=True)
    b = make_split(shuffled, SplitConfig(npc=10, seed=5))
    for name in ("A", "B", "heldout", "public"):
        assert sets(a, name) == sets(b, name)
    c = make_split(index, SplitConfig(npc=10, seed=6))
    assert sets(a, "A") != sets(c, "A")


def test_size_sweep_is_nested_and_public_fixed():
    index = pool(per_class=100)
    small = make_split(index, SplitConfig(npc=10, max_npc=20, seed=0))
    large = make_split(index, SplitConfig(npc=20, max_npc=20, seed=0))
    assert sets(small, "A") < sets(large, "A")
    assert sets(small, "B") < sets(large, "B")
    assert sets(small, "public") == sets(large, "public")
    assert sets(small, "heldout") == sets(large, "heldout")


def test_too_few_box_less_images_is_a_clear_error():
    index = pool(per_class=20, box_share=1.0)
    with pytest.raises(ValueError, match="box-less"):
        make_split(index, SplitConfig(npc=15, heldout_fraction=0.0))


def test_the_stage_reads_box_counts_not_boxes_and_splits_the_same(tmp_path):
    """The split job reads the index without its boxes and details (`read_for_split`: a
    box count per image); its split is the one the whole index gives."""
    from dejavu.core.store import write_index
    from dejavu.data.split import read_for_split
    index = pool(per_class=80, box_share=0.4, seed=2).assign(details=[[[0.5] * 7]] * 240)
    write_index(tmp_path / "index.parquet", index)
    read = read_for_split(str(tmp_path / "index.parquet"))
    assert "boxes" not in read and "details" not in read
    assert read["n_boxes"].tolist() == [len(b) for b in index["boxes"]]
    cfg = SplitConfig(npc=20, heldout_fraction=0.0, seed=0)
    pd.testing.assert_frame_equal(make_split(read, cfg), make_split(index, cfg))


def test_a_validation_pool_is_the_held_out_set_whole_and_the_train_pool_is_split_alone():
    """Rows of pool "heldout" (ImageNet's validation images) are held out, all of them and
    nothing else, attacked where boxed; A, B and the public sets are the train pool's split,
    as it would be without them."""
    train = pool(n_classes=3, per_class=40)
    val = pd.DataFrame({"id": [f"val_{i:03d}" for i in range(12)], "label": np.repeat([0, 1, 2], 4),
                        "boxes": [[[1, 1, 4, 4]]] * 11 + [[]], "height": 32, "width": 32})
    index = pd.concat([train.assign(pool="train"), val.assign(pool="heldout")],
                      ignore_index=True)
    cfg = SplitConfig(npc=10, heldout_fraction=0.0, public_test_per_class=5)
    split = make_split(index, cfg)
    check_disjoint(split)
    held = split[split["set"] == "heldout"]
    assert sorted(held["id"]) == sorted(val["id"])
    assert held.set_index("id")["attacked"].to_dict() == {i: i != "val_011" for i in val["id"]}
    assert (held["label"].to_numpy() == index.loc[held["row"], "label"].to_numpy()).all()
    alone = make_split(train, cfg)
    rest = split[split["set"] != "heldout"].reset_index(drop=True)
    pd.testing.assert_frame_equal(rest, alone)
