"""The one-model test: g in the reference's place, memorization confidence, agreement."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from dejavu.onemodel import onemodel
from dejavu.attack import score

pytestmark = pytest.mark.unit


def knn_table(ids, sets, correct, confidence, distance=None):
    n = len(ids)
    return pd.DataFrame({"id": ids, "set": sets, "label": np.zeros(n, int),
                         "correct": correct, "confidence": confidence,
                         "mean_distance": np.zeros(n) if distance is None else distance})


def classifier_table(ids, sets, correct, confidence, trained=None):
    n = len(ids)
    return pd.DataFrame({"id": ids, "set": sets, "correct": correct, "confidence": confidence,
                         "trained": np.zeros(n, bool) if trained is None else trained})


def random_tables(rng, n=40, sets=("A", "B", "heldout")):
    ids = [f"{s}{i:03d}" for s in sets for i in range(n)]
    set_of = [s for s in sets for _ in range(n)]
    m = len(ids)

    def tables():
        return (rng.random(m) < 0.6, -rng.random(m) * 2)

    knn_a = knn_table(ids, set_of, *tables(), rng.random(m))
    knn_b = knn_table(ids, set_of, *tables(), rng.random(m))
    g_b = classifier_table(ids, set_of, *tables(), np.array([s == "B" for s in set_of]))
    g_a = classifier_table(ids, set_of, *tables(), np.array([s == "A" for s in set_of]))
    return knn_a, knn_b, g_b, g_a


def brute_topp(correct, confidence, tiebreak, ids, p):
    order = sorted(range(len(ids)), key=lambda i: (-confidence[i], tiebreak[i], ids[i]))
    keep = order[:max(1, math.ceil(p * len(ids) - 1e-9))]
    return np.mean([correct[i] for i in keep])


def test_population_score_is_knn_topp_minus_classifier_topp_by_own_confidence():
    rng = np.random.default_rng(0)
    knn_a, _, g_b, _ = random_tables(rng)
    half = onemodel.make_half(knn_a, g_b, "A")
    result = score.score_half(half, 0.2)
    t = knn_a[knn_a["set"] == "A"].sort_values("id")
    g = g_b[g_b["set"] == "A"].sort_values("id")
    acc_t = brute_topp(t["correct"].tolist(), t["confidence"].tolist(),
                       t["mean_distance"].tolist(), t["id"].tolist(), 0.2)
    acc_g = brute_topp(g["correct"].tolist(), g["confidence"].tolist(), [0] * len(g),
                       g["id"].tolist(), 0.2)
    assert result["acc_target"] == pytest.approx(acc_t)
    assert result["acc_reference"] == pytest.approx(acc_g)
    assert result["score"] == pytest.approx(acc_t - acc_g)


def test_memorization_confidence_is_the_entropy_gap_where_only_the_target_is_right():
    p_t = np.array([[0.9, 0.1], [0.5, 0.5], [0.9, 0.1]])
    p_g = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]])

    def entropy(p):
        return -(p * np.log(p)).sum(1)

    value = onemodel.memorization_confidence(-entropy(p_t), -entropy(p_g),
                                             correct_t=[True, True, True],
                                             correct_g=[False, False, True])
    assert value[0] == pytest.approx(entropy(p_g)[0] - entropy(p_t)[0])
    assert value[0] > 0  # a confident target and an unsure classifier: surely memorized
    assert value[1] < 0
    assert np.isnan(value[2])  # g right: not memorized


def test_agreement_counts_each_tests_calls_and_their_overlap():
    t = [1, 1, 1, 1, 0, 0]
    r = [0, 0, 1, 1, 0, 1]
    g = [0, 1, 0, 1, 0, 0]
    out = onemodel.agreement(t, r, g)
    assert out["memorized_two_model"] == pytest.approx(2 / 6)  # images 0, 1
    assert out["memorized_one_model"] == pytest.approx(2 / 6)  # images 0, 2
    assert out["memorized_both"] == pytest.approx(1 / 6)
    assert out["memorized_overlap"] == pytest.approx(1 / 3)    # both / either
    assert math.isnan(onemodel.agreement([0], [0], [0])["memorized_overlap"])


def test_heldout_halves_alternate_like_the_two_model_control():
    rng = np.random.default_rng(1)
    knn_a, knn_b, g_b, g_a = random_tables(rng)
    ours = onemodel.halves(knn_a, knn_b, g_b, g_a, heldout=True)
    theirs = score.heldout_halves(knn_a, knn_b, split=True)
    for (k, g, attacked, _, _, part), half in zip(ours, theirs):
        assert onemodel.make_half(k, g, attacked, part).sample_id.tolist() == \
            half.sample_id.tolist()
    assert [h[3] for h in ours] == ["A", "B"]


def test_a_model_without_a_partner_attacks_set_a_only():
    rng = np.random.default_rng(2)
    knn_a, _, g_b, _ = random_tables(rng)
    real = onemodel.halves(knn_a, None, g_b, None, heldout=False)
    control = onemodel.halves(knn_a, None, g_b, None, heldout=True)
    assert [(h[2], h[3]) for h in real] == [("A", "A")]
    assert [(h[2], h[5]) for h in control] == [("heldout", slice(None))]


def test_refuses_crops_the_classifier_trained_on():
    rng = np.random.default_rng(3)
    knn_a, _, g_b, _ = random_tables(rng)
    with pytest.raises(ValueError, match="trained on 40 of the B crops"):
        onemodel.make_half(knn_a, g_b, "B")


def test_run_writes_swap_averaged_rows_per_control(tmp_path):
    rng = np.random.default_rng(4)
    paths = {}
    for name, table in zip(("knn_a", "knn_b", "g_b", "g_a"), random_tables(rng)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        table.to_parquet(paths[name])
    out = {k: str(tmp_path / f"out.{k}") for k in ("json", "samples", "curves")}
    args = dict(epoch=10, p=0.2, p_grid=[0.2, 1.0], n_boot=50, seed=0,
                combination={"method": "m"}, classifier="resnet")
    onemodel.run(paths["knn_a"], paths["g_b"], out["json"], out["samples"], out["curves"],
                 knn_b=paths["knn_b"], g_a=paths["g_a"], **args)
    rows = {r["control"]: r for r in json.loads(open(out["json"]).read())}
    assert set(rows) == {"none", "heldout"}
    tables = [pd.read_parquet(paths[k]) for k in ("knn_a", "knn_b", "g_b", "g_a")]
    halves = [onemodel.make_half(tables[0], tables[2], "A"),
              onemodel.make_half(tables[1], tables[3], "B")]
    expected = score.swap_average([score.score_half(h, 0.2) for h in halves])
    assert rows["none"]["score"] == pytest.approx(expected["score"])
    assert rows["none"]["acc_classifier"] == pytest.approx(expected["acc_reference"])
    assert rows["none"]["score_ci_low"] <= rows["none"]["score"] <= rows["none"]["score_ci_high"]
    assert rows["none"]["n_attacked"] == 80 and rows["heldout"]["n_attacked"] == 40
    samples = pd.read_parquet(out["samples"])
    real = samples[samples["control"] == "none"]
    called = real["correct_target"] & ~real["correct_classifier"]
    assert real["memorization"].notna().tolist() == called.tolist()
    assert rows["none"]["memorized_one_model"] == pytest.approx(
        real.groupby("target").apply(lambda h: (h["correct_target"]
                                                & ~h["correct_classifier"]).mean()).mean())
    curves = pd.read_parquet(out["curves"])
    assert {"acc_target", "acc_classifier", "score"} <= set(curves.columns)
    # without model B: the A half alone
    onemodel.run(paths["knn_a"], paths["g_b"], out["json"], out["samples"], out["curves"],
                 **args)
    alone = {r["control"]: r for r in json.loads(open(out["json"]).read())}
    assert alone["none"]["score"] == pytest.approx(score.score_half(halves[0], 0.2)["score"])
    assert alone["none"]["halves"] == 1 and "memorized_two_model" not in alone["none"]
