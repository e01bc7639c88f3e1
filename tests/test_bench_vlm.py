"""bench/vlm.py's findings on tables written by hand, and the records' split."""

import pandas as pd
import pytest

from conftest import bench_script

pytestmark = pytest.mark.unit


def rows(real_low=0.05, heldout=0.02, untrained=-0.01):
    out = []
    for control, value, low in (("none", 0.2, real_low), ("heldout", heldout, -0.1),
                                ("untrained", untrained, -0.1)):
        for search in ("t2i", "t2t"):
            out.append({"test": "vlm", "seed": 0, "search": search, "control": control,
                        "k": 10, "mode": "top10", "precision_gap": value,
                        "precision_gap_ci_low": low, "precision_gap_ci_high": value + 0.1,
                        "recall_gap": value, "recall_gap_ci_low": low,
                        "recall_gap_ci_high": value + 0.1})
    return pd.DataFrame(out)


@pytest.mark.parametrize("changes, broken", [
    ({}, []),
    ({"real_low": -0.01}, ["t2i: precision_gap +0.200, interval reaches -0.010",
                           "t2i: recall_gap +0.200, interval reaches -0.010"]),
    ({"heldout": 0.15}, ["t2i: heldout control precision_gap +0.150",
                         "t2i: heldout control recall_gap +0.150",
                         "t2t: heldout control precision_gap +0.150",
                         "t2t: heldout control recall_gap +0.150"]),
])
def test_a_finding_breaks_on_the_rows_that_break_it(changes, broken):
    found = bench_script("vlm").findings(rows(**changes))
    assert len(found) == len(broken) and all(b in f for b, f in zip(broken, found))


def test_the_records_split_is_seeded_and_sized():
    from dejavu.vlm import data
    one, again = data.split(100, 20, seed=4), data.split(100, 20, seed=4)
    assert one.equals(again) and not one.equals(data.split(100, 20, seed=5))
    assert one["set"].value_counts().to_dict() == {"public": 40, "A": 20, "B": 20,
                                                   "heldout": 20}
    with pytest.raises(ValueError, match="vlm.split.per_set"):
        data.split(60, 20, seed=0)


def test_the_records_store_gives_each_records_objects_with_or_without_the_named(tmp_path):
    import numpy as np

    from dejavu.data.sources import Rejects
    from dejavu.vlm import data
    records = pd.DataFrame({"id": ["a", "b"], "caption": ["a cup", "a kite"],
                            "objects": [[0, 2], [1]], "named": [[0], []]})
    images = np.zeros((2, 8, 8, 3), np.uint8)
    images[1] += 7
    data.write_store(str(tmp_path / "s"), images, records, ["cup", "kite", "lamp"],
                     Rejects("vlm_data").table())
    rows, store = np.array([0, 1]), data.Records(str(tmp_path / "s"))
    assert store.objects(rows).tolist() == [
        [True, False, True], [False, True, False]]
    assert store.objects(rows, unnamed_only=True).tolist() == [
        [False, False, True], [False, True, False]]
    assert store.captions(np.array([1])) == ["a kite"]
    assert (store.images(np.array([1])) == 7).all()
