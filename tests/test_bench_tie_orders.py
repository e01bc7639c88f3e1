"""bench/tie_orders.py on k-NN tables written by hand: each of the authors' rules moves the
score as worked out below, random tie orders span the range the tie rule picks from, and a
results folder's table pairs are found."""

import numpy as np
import pandas as pd
import pytest

from conftest import bench_script
from dejavu.attack.knn import confidence

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def bench():
    return bench_script("tie_orders")


def table(sets_hists, labels, distances) -> pd.DataFrame:
    """A k-NN table: one row per attacked crop, ids 0..n-1 per set."""
    rows = []
    for (name, hists), label, dist in zip(sets_hists, labels, distances):
        for i, (h, lab, d) in enumerate(zip(hists, label, dist)):
            h = np.asarray(h)
            rows.append({"id": i if name == "A" else 100 + i, "set": name,
                         "voted": np.flatnonzero(h), "votes": h[h > 0],
                         "label": lab, "prediction": int(np.argmax(h)), "correct": None,
                         "confidence": float(confidence(h[None])[0]), "mean_distance": d})
    out = pd.DataFrame(rows)
    out["correct"] = out["prediction"] == out["label"]
    return out


def test_each_rule_moves_the_score_as_worked_out_by_hand(bench):
    # Target: four A crops, all unanimous (confidence 0, a four-way tie); the two nearest
    # are right, the two farthest wrong. Reference: every crop wrong. B mirrors A.
    unanimous = [[4, 0], [4, 0], [0, 4], [0, 4]]      # predictions 0, 0, 1, 1
    labels = [0, 0, 0, 0]
    near_first = [0.1, 0.2, 0.3, 0.4]
    target = table([("A", unanimous), ("B", unanimous)], [labels, labels],
                   [near_first, near_first])
    wrong = table([("A", [[0, 4]] * 4), ("B", [[0, 4]] * 4)], [labels, labels],
                  [near_first, near_first])
    # A model's table holds its own set as target and the other as reference: A's table
    # is the target on A and the reference on B.
    a = pd.concat([target[target["set"] == "A"], wrong[wrong["set"] == "B"]])
    b = pd.concat([target[target["set"] == "B"], wrong[wrong["set"] == "A"]])
    row = bench.scores(a, b, p=0.5, orders=200, seed=0)
    # top-2 by distance: both right (1.0) against the reference's 0.0
    assert row["dejavu"] == pytest.approx(1.0)
    assert row["count"] == pytest.approx(1.0)           # int(4 * 0.5) = ceil = 2
    # random orders pick 0, 1 or 2 right crops of the four-way tie
    assert row["conf_min"] == pytest.approx(0.0) and row["conf_max"] == pytest.approx(1.0)
    assert row["tied"] == 2 and row["top"] == 2
    # p = 0.2: int(0.8) = 0 crops, no score; dejavu keeps one
    small = bench.scores(a, b, p=0.2, orders=10, seed=0)
    assert np.isnan(small["count"]) and small["dejavu"] == pytest.approx(1.0)


def test_smallest_id_ties_change_the_prediction(bench):
    knn = pd.DataFrame({"voted": [np.array([0, 1]), np.array([1, 0])],
                        "votes": [np.array([2, 2]), np.array([3, 1])], "label": [1, 1],
                        "correct": [True, True]})
    assert bench.smallest_id_correct(knn)["correct"].tolist() == [False, True]


def test_table_pairs_are_found_under_a_results_folder(bench, tmp_path):
    for subset in ("A", "B"):
        folder = tmp_path / "synthetic/knn/vicreg/convnet/default/n50/s0" / subset / "epoch4"
        folder.mkdir(parents=True)
        (folder / "periphery-projector-k20.parquet").write_bytes(b"")
    labels = [label for label, *_ in bench.pairs(tmp_path)]
    assert labels == ["vicreg/convnet/default/n50/s0/epoch4/periphery-projector-k20"]
