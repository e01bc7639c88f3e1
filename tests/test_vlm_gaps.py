"""The vision-language test's numbers (dejavu/vlm/): objects predicted from neighbours,
precision and recall, and the population gaps, each against a hand-computed answer."""

import numpy as np
import pytest

from dejavu.vlm import gaps, objects

pytestmark = pytest.mark.unit


def test_objects_predicted_from_neighbours_most_frequent_first_ties_to_the_smaller_id():
    # one record, k = 3 neighbours over a vocabulary of 12: object 5 twice, 2 and 7 once
    neighbours = objects.multi_hot([[5, 2], [5, 7], []], 12)[None]
    assert np.flatnonzero(objects.predict(neighbours, "top1")[0]).tolist() == [5]
    assert np.flatnonzero(objects.predict(neighbours, "all")[0]).tolist() == [2, 5, 7]
    # top10 of three present objects: the three, never an absent one
    assert np.flatnonzero(objects.predict(neighbours, "top10")[0]).tolist() == [2, 5, 7]
    tied = objects.multi_hot([[9, 3], [3, 9], [1]], 12)[None]
    assert np.flatnonzero(objects.predict(tied, "top1")[0]).tolist() == [3]
    many = objects.multi_hot([list(range(12)), list(range(11))], 12)[None]
    assert np.flatnonzero(objects.predict(many, "top10")[0]).tolist() == list(range(10))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        objects.multi_hot([[12]], 12)


def test_precision_and_recall_of_a_prediction():
    predicted = objects.multi_hot([[1, 2, 3], [], [4], [0]], 6)
    true = objects.multi_hot([[2, 3, 5, 0], [1], [4], []], 6)
    precision, recall, hits = objects.precision_recall(predicted, true)
    np.testing.assert_allclose(precision, [2 / 3, 0, 1, 0])
    np.testing.assert_allclose(recall[:3], [2 / 4, 0, 1])
    assert np.isnan(recall[3]) and hits.tolist() == [2, 0, 1, 0]
    named = objects.multi_hot([[2], [], [], []], 6)
    assert np.flatnonzero(objects.unnamed(true, named)[0]).tolist() == [0, 3, 5]


def test_population_gap_counts_wins_minus_losses():
    target = np.array([0.5, 0.2, 0.9, 0.1, np.nan])
    reference = np.array([0.4, 0.2, 0.3, 0.6, 0.1])
    assert gaps.population_gap(target, reference) == pytest.approx((2 - 1) / 4)
    assert np.isnan(gaps.population_gap(np.array([np.nan]), np.array([0.1])))


def test_the_recall_ccdf_and_its_area():
    recall = np.array([0.0, 0.25, 0.25, 1.0, np.nan])
    np.testing.assert_allclose(gaps.ccdf(recall, np.array([0.0, 0.25, 0.5, 1.0])),
                               [0.75, 0.25, 0.25, 0.0])
    grid = np.linspace(0, 1, 100001)
    integral = np.trapezoid(gaps.ccdf(recall, grid), grid)
    assert gaps.ccdf_area(recall) == pytest.approx(0.375)
    assert integral == pytest.approx(0.375, abs=1e-4)


def test_top_share_gaps_take_the_records_the_target_recovers_best():
    n = 1000
    hits_t, hits_r = np.zeros(n), np.zeros(n)
    precision_t, precision_r = np.full(n, 0.5), np.full(n, 0.5)
    recall_t, recall_r = np.full(n, 0.5), np.full(n, 0.5)
    hits_t[:10] = 3                      # the target finds 3 more objects on 10 records...
    recall_t[:10], precision_t[:10] = 1.0, 0.8
    hits_t[10:100] = 1                   # ...and one more on 90
    recall_t[10:100] = 0.6
    out = gaps.top_gaps(hits_t, hits_r, precision_t, precision_r, recall_t, recall_r)
    assert out["top0.001_recall_gap"] == pytest.approx(0.5)       # 1 record
    assert out["top0.01_recall_gap"] == pytest.approx(0.5)        # the 10
    assert out["top0.01_precision_gap"] == pytest.approx(0.3)
    assert out["top0.1_recall_gap"] == pytest.approx((10 * 0.5 + 90 * 0.1) / 100)
    f_t, f_r = 2 * 0.8 * 1.0 / 1.8, 0.5
    assert out["top0.01_f_gap"] == pytest.approx(f_t - f_r)
    every = gaps.gaps(precision_t, recall_t, hits_t, precision_r, recall_r, hits_r)
    assert every["recall_gap"] == pytest.approx(0.1) and every["precision_gap"] == 0.01
    assert every["recall_ccdf_area_gap"] == pytest.approx((10 * 0.5 + 90 * 0.1) / n)
