import numpy as np
import pytest

from dejavu.attack.score import (Half, bootstrap_scores, confidence_order, evaluate, partition,
                          score_half, swap_average, top_count, topp_accuracy)

pytestmark = pytest.mark.unit


def make_half(correct_t, conf_t, correct_r, conf_r, dist=None):
    n = len(correct_t)
    dist = np.zeros(n) if dist is None else dist
    return Half(np.arange(n), np.asarray(correct_t, bool), np.asarray(conf_t, float), dist,
                np.asarray(correct_r, bool), np.asarray(conf_r, float), dist)


def test_confidence_order_ties_by_distance_then_id():
    conf = np.array([-1.0, -0.5, -0.5, -0.5])
    dist = np.array([0.0, 2.0, 1.0, 1.0])
    assert confidence_order(conf, dist, np.array([0, 1, 3, 2])).tolist() == [3, 2, 1, 0]


def test_top_count():
    assert top_count(10, 0.2) == 2
    assert top_count(7, 0.2) == 2  # ceil(1.4)
    assert top_count(3, 0.01) == 1
    assert top_count(10, 1.0) == 10


def test_topp_accuracy_uses_each_models_own_ranking():
    # target is right on its two most confident images; reference's top two are wrong
    half = make_half([1, 1, 0, 0, 0], [5, 4, 3, 2, 1], [0, 0, 1, 1, 1], [5, 4, 3, 2, 1])
    out = score_half(half, p=0.4)
    assert out["acc_target"] == 1.0 and out["acc_reference"] == 0.0 and out["score"] == 1.0
    assert out["acc_target_all"] == pytest.approx(0.4)
    assert out["acc_reference_all"] == pytest.approx(0.6)


def test_partition_shares_sum_to_one_and_count_right():
    rng = np.random.default_rng(0)
    t, r = rng.random(101) < 0.6, rng.random(101) < 0.4
    shares = partition(t, r)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["memorized"] == pytest.approx(np.mean(t & ~r))
    assert shares["misrepresented"] == pytest.approx(np.mean(~t & r))


def test_swap_average_is_mean_of_halves():
    a = {"score": 0.3, "memorized": 0.2}
    b = {"score": 0.1, "memorized": 0.4}
    assert swap_average([a, b]) == pytest.approx({"score": 0.2, "memorized": 0.3})


def test_identical_models_score_zero_and_tight_interval():
    rng = np.random.default_rng(0)
    correct, conf = rng.random(200) < 0.5, rng.normal(size=200)
    half = make_half(correct, conf, correct, conf)
    summary, curves, _ = evaluate([half, half], 0.2, [0.1, 0.2, 1.0], n_boot=200, seed=0)
    assert summary["score"] == 0.0
    assert summary["score_ci_low"] == summary["score_ci_high"] == 0.0
    assert (curves["acc_target"] == curves["acc_reference"]).all()
    assert (curves["score_low"] == 0).all() and (curves["score_high"] == 0).all()


def test_curve_bands_hold_the_estimate_and_agree_with_the_score_interval():
    rng = np.random.default_rng(5)
    n = 120
    halves = [make_half(rng.random(n) < 0.7, rng.normal(size=n), rng.random(n) < 0.4,
                        rng.normal(size=n)) for _ in range(2)]
    summary, curves, _ = evaluate(halves, 0.2, [0.1, 0.2, 0.5, 1.0], n_boot=300, seed=2)
    for name in ("acc_target", "acc_reference", "score"):
        assert (curves[f"{name}_low"] <= curves[name] + 1e-12).all()
        assert (curves[name] <= curves[f"{name}_high"] + 1e-12).all()
    at = curves.set_index("p").loc[0.2]
    assert at["score"] == pytest.approx(summary["score"])
    assert (at["score_low"], at["score_high"]) == pytest.approx(
        (summary["score_ci_low"], summary["score_ci_high"]))
    full = curves.set_index("p").loc[1.0]  # p = 1 resamples all images: wider than nothing
    assert full["acc_target_high"] > full["acc_target_low"]


def test_bootstrap_interval_covers_estimate_and_matches_a_slow_oracle():
    rng = np.random.default_rng(3)
    n = 60
    half = make_half(rng.random(n) < 0.7, rng.normal(size=n), rng.random(n) < 0.4,
                     rng.normal(size=n))
    fast = bootstrap_scores([half], 0.2, n_boot=50, seed=7)
    # oracle: materialise each resample and score it from scratch
    draws = np.random.default_rng(7).integers(0, n, size=(50, n))
    slow = []
    for d in draws:
        order_t, order_r = half.orders()
        rank_t, rank_r = np.argsort(order_t), np.argsort(order_r)
        m = top_count(n, 0.2)
        top_t = d[np.argsort(rank_t[d], kind="stable")[:m]]
        top_r = d[np.argsort(rank_r[d], kind="stable")[:m]]
        slow.append(half.correct_t[top_t].mean() - half.correct_r[top_r].mean())
    np.testing.assert_allclose(fast, slow)
    summary, _, _ = evaluate([half], 0.2, [0.2], n_boot=500, seed=0)
    assert summary["score_ci_low"] <= summary["score"] <= summary["score_ci_high"]


def test_topp_accuracy_small_known_case():
    correct = np.array([True, False, True, True])
    order = np.array([1, 0, 2, 3])
    assert topp_accuracy(correct, order, 0.5) == 0.5
    assert topp_accuracy(correct, order, 0.25) == 0.0


def test_heldout_halves_alternate_and_unsplit_control_is_identically_zero():
    import pandas as pd

    from dejavu.attack.score import heldout_halves
    rng = np.random.default_rng(0)
    ids = [f"h{i:03d}" for i in range(40)]

    def table():
        return pd.DataFrame({"id": ids, "set": "heldout", "correct": rng.random(40) < 0.5,
                             "confidence": rng.normal(size=40), "mean_distance": 0.0})

    a, b = table(), table()
    halves = heldout_halves(a, b, split=True)
    assert list(halves[0].sample_id) == ids[0::2] and list(halves[1].sample_id) == ids[1::2]
    unsplit, _, _ = evaluate(heldout_halves(a, b, split=False), 0.2, [0.2], n_boot=20, seed=0)
    assert unsplit["score"] == 0.0 and unsplit["memorized"] == unsplit["misrepresented"]


def test_command_line_scores_two_knn_tables(tmp_path, capsys):
    import json

    import pandas as pd

    from dejavu.__main__ import main
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        ids_a, ids_b = [f"a{i}" for i in range(30)], [f"b{i}" for i in range(30)]
        # model a is right on set A more often; model b is right on set B more often
        good, bad = (ids_a, ids_b) if name == "a" else (ids_b, ids_a)
        table = pd.DataFrame({"id": good + bad, "set": ["A"] * 30 + ["B"] * 30,
                              "correct": np.r_[rng.random(30) < 0.9, rng.random(30) < 0.2],
                              "confidence": rng.normal(size=60), "mean_distance": 0.0})
        if name == "b":
            table["set"] = ["B"] * 30 + ["A"] * 30
        table.to_parquet(tmp_path / f"{name}.parquet")
    main(["score", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"),
          str(tmp_path / "s.json")])
    rows = json.loads((tmp_path / "s.json").read_text())
    assert rows[0]["control"] == "none" and rows[0]["score"] > 0.3


def test_top5_label_inference_is_scored_on_the_same_top_p_images_and_resamples():
    """Top-5 is judged on the images each model is most confident on (its top-1 ranking),
    and its interval comes from the very resamples of the top-1 score: with top-5 equal to
    top-1 every top-5 number equals its top-1 twin; a known case otherwise."""
    rng = np.random.default_rng(5)
    n = 80
    half = make_half(rng.random(n) < 0.6, rng.normal(size=n), rng.random(n) < 0.4,
                     rng.normal(size=n))
    same = Half(*[getattr(half, f) for f in ("sample_id", "correct_t", "confidence_t",
                                              "distance_t", "correct_r", "confidence_r",
                                              "distance_r")],
                correct5_t=half.correct_t, correct5_r=half.correct_r)
    summary, _, boot = evaluate([same], 0.25, [0.25, 1.0], n_boot=200, seed=1)
    plain, _, plain_boot = evaluate([half], 0.25, [0.25, 1.0], n_boot=200, seed=1)
    np.testing.assert_array_equal(boot, plain_boot)  # the top-1 numbers are untouched
    assert summary["score_top5"] == summary["score"] == plain["score"]
    assert summary["memorized_top5"] == summary["memorized"]
    assert (summary["score_top5_ci_low"], summary["score_top5_ci_high"]) == \
        (summary["score_ci_low"], summary["score_ci_high"])
    assert "score_top5" not in plain
    # three images; the target ranks 2, 0, 1 and the reference 0, 1, 2 by confidence; at
    # p = 2/3 each keeps its first two
    known = make_half([0, 0, 0], [2.0, 1.0, 3.0], [0, 0, 0], [3.0, 2.0, 1.0])
    known = Half(*[getattr(known, f) for f in ("sample_id", "correct_t", "confidence_t",
                                                "distance_t", "correct_r", "confidence_r",
                                                "distance_r")],
                 correct5_t=np.array([True, False, True]),
                 correct5_r=np.array([False, True, True]))
    result = score_half(known, 2 / 3)
    assert result["acc_target_top5"] == 1.0 and result["acc_reference_top5"] == 0.5
    assert result["score_top5"] == 0.5 and result["memorized_top5"] == 1 / 3
