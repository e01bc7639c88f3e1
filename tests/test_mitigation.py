"""A mitigation's change against default, with paired intervals, and the frontier
(dejavu/report/mitigation.py), on tables whose answers are known."""

import numpy as np
import pandas as pd
import pytest

from dejavu.attack.score import Half, evaluate
from dejavu.report import mitigation
from dejavu.report.tables import KEYS

pytestmark = pytest.mark.unit

RUN = {"dataset": "synthetic", "method": "vicreg", "backbone": "convnet", "train_size": 8,
       "seed": 0, "embedding": "projector", "k": 5, "crop_mode": "periphery", "epoch": 2,
       "control": "none", "p": 0.2}


def half(correct_t, seed) -> Half:
    rng = np.random.default_rng(seed)
    n = len(correct_t)
    return Half(np.arange(n), np.asarray(correct_t), rng.random(n), rng.random(n),
                rng.random(n) < 0.3, rng.random(n), rng.random(n))


def scored(variant, correct_t):
    """A summary row and its resampled scores, as the score stage writes them."""
    summary, _, boot = evaluate([half(correct_t, 1)], 0.2, [0.2], n_boot=400, seed=0)
    row = {**RUN, "variant": variant, "score": summary["score"]}
    return row, pd.DataFrame({**{k: row[k] for k in KEYS + ["epoch", "control"]},
                              "score": boot, "replicate": np.arange(len(boot))})


def test_score_change_interval_is_paired():
    """The same attacked images resampled alike: a variant whose target gets one more
    image right changes every resample's score by the same small amount or not at all, so
    its interval is far narrower than either run's own."""
    rng = np.random.default_rng(5)
    base = rng.random(200) < 0.5
    better = base.copy()
    better[np.flatnonzero(~base)[:20]] = True
    rows, boots = zip(scored("default", base), scored("strong", better))
    summary = pd.DataFrame(rows)
    change = mitigation.score_changes(summary, pd.concat(boots)).iloc[0]
    assert change["variant"] == "strong"
    assert change["score_change"] == pytest.approx(rows[1]["score"] - rows[0]["score"])
    assert change["score_change_ci_low"] <= change["score_change"] <= \
        change["score_change_ci_high"]
    own = np.quantile(boots[0]["score"], [0.025, 0.975])
    assert change["score_change_ci_high"] - change["score_change_ci_low"] < \
        0.5 * (own[1] - own[0])
    # the same run against itself: no change, an interval of zero width
    same = mitigation.score_changes(
        pd.DataFrame([rows[0], {**rows[0], "variant": "copy"}]),
        pd.concat([boots[0], boots[0].assign(variant="copy")])).iloc[0]
    assert same[["score_change", "score_change_ci_low", "score_change_ci_high"]].tolist() == \
        [0, 0, 0]


def test_utility_change_averages_models_a_and_b_per_image():
    rows = np.arange(100)
    run = {"method": "vicreg", "backbone": "convnet", "train_size": 8, "seed": 0, "epoch": 2}
    parts = []
    for variant, right_a, right_b in (("default", 50, 60), ("narrow", 40, 40)):
        for subset, right in (("A", right_a), ("B", right_b)):
            parts.append(pd.DataFrame({"row": rows, "probe_correct": rows < right,
                                       "knn_correct": rows < 30, **run,
                                       "variant": variant, "subset": subset}))
    out = mitigation.utility_changes(pd.concat(parts), n_boot=300, seed=0).iloc[0]
    assert out["variant"] == "narrow"
    assert out["probe_test_acc_change"] == pytest.approx(0.40 - 0.55)
    assert out["probe_test_acc_change_ci_low"] < -0.15 < out["probe_test_acc_change_ci_high"]
    assert out["knn_test_acc_change"] == 0 == out["knn_test_acc_change_ci_low"] == \
        out["knn_test_acc_change_ci_high"]


def test_frontier_marks_the_runs_no_other_beats_on_both():
    points = [(0.80, 0.30), (0.70, 0.10), (0.75, 0.20), (0.60, 0.15), (0.80, 0.35)]
    summary = pd.DataFrame([{**RUN, "variant": f"v{i}", "probe_test_acc": u, "score": s}
                            for i, (u, s) in enumerate(points)]
                           + [{**RUN, "variant": "v0", "control": "heldout",
                               "probe_test_acc": 0.9, "score": 0.0}])
    assert mitigation.frontier(summary).tolist() == [True, True, True, False, False, pd.NA]


def test_a_frontier_compares_runs_at_one_embedding():
    """The probe accuracy is the model's: the default's inner layer, scoring lower at the
    same accuracy, does not push its own projector off the projector's frontier; at the
    layer, the variant that scores lower there is the one on it."""
    rows = [("default", "projector", 0.90, 0.25), ("default", "block2", 0.90, 0.02),
            ("narrow", "projector", 0.80, 0.24), ("narrow", "block2", 0.80, 0.01)]
    summary = pd.DataFrame([{**RUN, "variant": v, "embedding": e, "probe_test_acc": u,
                             "score": s} for v, e, u, s in rows])
    assert mitigation.frontier(summary).tolist() == [True, True, True, True]
    summary.loc[2, "score"] = 0.30   # narrow's projector now loses on both counts
    assert mitigation.frontier(summary).tolist() == [True, True, False, True]
