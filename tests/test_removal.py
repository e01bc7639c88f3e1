"""The removal experiment (dejavu/data/removal.py): which images a removal run leaves out, the
training set it then trains on, its table and curves, and the settings refused."""

import json

import numpy as np
import pandas as pd
import pytest

from dejavu.data import removal

pytestmark = pytest.mark.unit


def sslmem_table():
    """Set A scored with target A (ids 10..17), set B and held-out rows that removal must
    ignore, one tie in m (ids 12 and 15)."""
    a = pd.DataFrame({"id": np.arange(10, 18), "set": "A", "target": "A",
                      "m": [0.1, -0.2, 0.5, 0.0, 0.3, 0.5, -0.1, 0.2]})
    b = pd.DataFrame({"id": [1, 2], "set": "B", "target": "B", "m": [9.0, 8.0]})
    held = pd.DataFrame({"id": [3, 4], "set": "heldout", "target": "A", "m": [7.0, 6.0]})
    return pd.concat([a, b, held], ignore_index=True)


def test_the_most_memorized_images_of_a_are_removed_ties_by_id():
    table = sslmem_table()
    assert removal.removed_ids(table, "memorized", 1, 0).tolist() == [12]
    assert removal.removed_ids(table, "memorized", 4, 0).tolist() == [12, 15, 14, 17]
    with pytest.raises(ValueError, match="removal.counts: 8 of the 8"):
        removal.removed_ids(table, "memorized", 8, 0)


def test_random_removal_is_seeded_nested_and_from_a_alone():
    table = sslmem_table()
    five = removal.removed_ids(table, "random", 5, seed=3)
    assert set(five) <= set(range(10, 18)) and len(set(five)) == 5
    assert removal.removed_ids(table, "random", 2, seed=3).tolist() == five[:2].tolist()
    assert removal.removed_ids(table, "random", 5, seed=3).tolist() == five.tolist()
    others = {tuple(removal.removed_ids(table, "random", 5, seed=s)) for s in range(6)}
    assert len(others) > 1  # another model seed, another draw


def test_subset_names_round_trip_and_the_wildcard_takes_them():
    import re
    for kind in removal.KINDS:
        name = removal.subset(kind, 25)
        assert removal.parse(name) == ("A", kind, 25) and removal.base(name) == "A"
        assert re.fullmatch(removal.SUBSET_PATTERN, name)
    assert removal.parse("B") == ("B", None, 0)
    for bad in ("A-memorized0", "B-random5", "A-other5", "AB"):
        assert not re.fullmatch(removal.SUBSET_PATTERN, bad), bad


def test_a_removal_run_trains_on_a_without_the_removed_ids(tmp_path):
    from dejavu.data.split import SetImages
    from dejavu.data.synth import SynthConfig, generate
    from dejavu.core.store import write_images
    from dejavu.training.train import training_set
    data, index = generate(SynthConfig(n_classes=2, images_per_class=6, image_size=16))
    write_images(str(tmp_path / "images.zarr"), data)
    split = pd.DataFrame({"id": index["id"], "row": np.arange(len(index)),
                          "label": index["label"],
                          "set": np.where(np.arange(len(index)) % 2 == 0, "A", "B")})
    split.to_parquet(tmp_path / "split.parquet")
    gone = split[split["set"] == "A"]["id"].to_numpy()[[1, 4]]
    pd.DataFrame({"id": gone}).to_parquet(tmp_path / "gone.parquet")
    whole, labels, _ = training_set(str(tmp_path / "images.zarr"),
                                    str(tmp_path / "split.parquet"), "A")
    kept, kept_labels, _ = training_set(str(tmp_path / "images.zarr"),
                                        str(tmp_path / "split.parquet"), "A-random2",
                                        removed=str(tmp_path / "gone.parquet"))
    assert len(kept) == len(whole) - 2
    rows_left = [r for r in whole.rows if split.set_index("row").loc[r, "id"] not in gone]
    assert kept.rows.tolist() == rows_left
    assert kept_labels.tolist() == split.set_index("row").loc[rows_left, "label"].tolist()
    assert isinstance(kept, SetImages)
    pd.DataFrame({"id": [999]}).to_parquet(tmp_path / "stranger.parquet")
    with pytest.raises(ValueError, match="not in set A"):
        training_set(str(tmp_path / "images.zarr"), str(tmp_path / "split.parquet"),
                     "A-random1", removed=str(tmp_path / "stranger.parquet"))


def test_the_table_and_curves_average_seeds_with_a_as_both_curves_start(tmp_path):
    paths = []
    for seed, accs in ((0, (0.80, 0.70, 0.78)), (1, (0.84, 0.72, 0.80))):
        for subset, acc in zip(("A", "A-memorized10", "A-random10"), accs):
            path = tmp_path / f"{seed}-{subset}.json"
            path.write_text(json.dumps({
                "method": "vicreg", "backbone": "convnet", "variant": "default",
                "train_size": 50, "seed": seed, "epoch": 400, "subset": subset,
                "test_acc": acc, "knn_test_acc": acc - 0.1}))
            paths.append(str(path))
    results = removal.table(paths)
    assert results.columns.tolist() == removal.COLUMNS and len(results) == 6
    curves = removal.curves(results).set_index(["kind", "removed"])
    assert curves.loc[("memorized", 0), "probe_test_acc"] == pytest.approx(0.82)
    assert curves.loc[("random", 0), "probe_test_acc"] == pytest.approx(0.82)
    assert curves.loc[("memorized", 10), "probe_test_acc"] == pytest.approx(0.71)
    assert curves.loc[("random", 10), "se"] == pytest.approx(np.std([0.78, 0.80], ddof=1)
                                                              / np.sqrt(2))
    assert (curves["seeds"] == 2).all()


@pytest.mark.parametrize("changes, key", [
    ({"sslmem": {"enabled": False}}, "removal.enabled: needs sslmem.enabled: true"),
    ({"probe": {"enabled": False}}, "removal.enabled: needs probe.enabled: true"),
    ({"removal": {"methods": ["simclr"]}}, "removal.methods: ['simclr'] not in train.methods"),
    ({"removal": {"counts": [500]}}, "removal.counts: 500 images removed of a set A of 500"),
])
def test_removal_settings_that_cannot_run_are_named(changes, key):
    from test_config import problems
    changes = {section: {**({"enabled": True} if section == "removal" else {}), **change}
               for section, change in changes.items()}
    changes.setdefault("removal", {"enabled": True})
    assert key in problems(**changes)


def test_a_second_dataset_is_split_by_class_with_its_seed():
    from dejavu.attack import downstream
    index = pd.DataFrame({"id": [f"x{i}" for i in range(15)],
                          "label": [0] * 10 + [1] * 4 + [2]})
    table = downstream.split(index, 0.5, seed=3)
    assert table["row"].tolist() == list(range(15))  # rows are the store's, in order
    tested = table[table["part"] == "test"].groupby("label").size().to_dict()
    assert tested == {0: 5, 1: 2}  # half of each class; a class of one image is only fit
    assert table.equals(downstream.split(index, 0.5, seed=3))
    assert not table.equals(downstream.split(index, 0.5, seed=4))
    few = downstream.split(index, 0.01, seed=3)  # at least one tested, never all of a class
    assert few[few["part"] == "test"].groupby("label").size().to_dict() == {0: 1, 1: 1}
    assert (downstream.split(index, 0.99, seed=3)["part"] == "fit").groupby(
        index["label"]).sum().to_dict() == {0: 1, 1: 1, 2: 1}


def test_second_datasets_rows_carry_their_name_beside_the_runs_own(tmp_path):
    run = {"method": "vicreg", "backbone": "convnet", "variant": "default",
           "train_size": 50, "seed": 0, "epoch": 400, "subset": "A-random10"}
    own, other = tmp_path / "own.json", tmp_path / "other.json"
    own.write_text(json.dumps({**run, "test_acc": 0.8, "knn_test_acc": 0.7}))
    other.write_text(json.dumps({**run, "dataset": "other", "test_acc": 0.6,
                                 "knn_test_acc": 0.5}))
    table = removal.table([str(own)], [str(other)], "synthetic")
    assert table[["dataset", "probe_test_acc"]].values.tolist() == [["synthetic", 0.8],
                                                                     ["other", 0.6]]
    curves = removal.curves(table)  # each dataset its own curve
    assert curves[["dataset", "probe_test_acc"]].values.tolist() == [["other", 0.6],
                                                                      ["synthetic", 0.8]]


def test_a_second_dataset_that_is_not_there_or_named_twice_is_named():
    from test_config import problems
    found = problems(removal={"enabled": True, "downstream": [
        {"name": "synthetic", "index": "nowhere/index.parquet"}]})
    assert "removal.downstream[0].name: 'synthetic' names another dataset of the run" in found
    assert "removal.downstream[0].index: nowhere/index.parquet does not exist" in found
    assert "removal.downstream[0].images: nowhere/images.zarr does not exist" in found
