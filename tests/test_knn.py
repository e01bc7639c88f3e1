import numpy as np
import pytest

from dejavu.knn import class_votes, confidence, label_crops, rank_classes, search


def test_votes_and_distance_sums():
    labels = np.array([[0, 1, 1, 2]])
    dist = np.array([[1.0, 2.0, 3.0, 4.0]])
    hist, dsum = class_votes(labels, dist, 4)
    assert hist.tolist() == [[1, 2, 1, 0]]
    assert dsum.tolist() == [[1.0, 5.0, 4.0, 0.0]]


def test_prediction_ties_go_to_smaller_summed_distance_then_smaller_class():
    # classes 0 and 2 have two votes each; class 2's neighbours are closer
    hist = np.array([[2, 0, 2], [2, 0, 2]])
    dist = np.array([[5.0, 0.0, 3.0], [3.0, 0.0, 3.0]])
    order = rank_classes(hist, dist)
    assert order[0, 0] == 2 and order[1, 0] == 0  # second row: exact tie -> smaller id
    assert order[0].tolist() == [2, 0, 1]  # class without votes comes last


def test_confidence_is_negative_entropy():
    hist = np.array([[4, 0, 0, 0], [1, 1, 1, 1], [2, 2, 0, 0]])
    c = confidence(hist)
    np.testing.assert_allclose(c, [0.0, -np.log(4), -np.log(2)])
    assert c[0] > c[2] > c[1]


def test_search_matches_numpy_brute_force():
    rng = np.random.default_rng(0)
    db, q = rng.normal(size=(300, 16)), rng.normal(size=(40, 16))
    dist, ids = search(db, q, k=7)
    full = ((q[:, None, :] - db[None]) ** 2).sum(-1)
    expected = np.argsort(full, axis=1)[:, :7]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(full, expected, 1), rtol=1e-4)


def test_cosine_search_ignores_scale():
    rng = np.random.default_rng(1)
    db, q = rng.normal(size=(100, 8)), rng.normal(size=(5, 8))
    _, ids = search(db * rng.uniform(0.1, 10, size=(100, 1)), q, k=3, metric="cosine")
    unit = db / np.linalg.norm(db, axis=1, keepdims=True)
    expected = np.argsort(-(q / np.linalg.norm(q, axis=1, keepdims=True)) @ unit.T, axis=1)[:, :3]
    np.testing.assert_array_equal(ids, expected)


def test_k_larger_than_public_set_is_an_error():
    with pytest.raises(ValueError, match="exceeds"):
        search(np.zeros((3, 2)), np.zeros((1, 2)), k=5)


def test_label_crops_top5_and_prediction():
    labels = np.array([0, 0, 1, 2, 3, 4, 5])
    ids = np.array([[0, 1, 2, 3, 4, 5, 6]])
    dist = np.arange(7.0)[None]
    out = label_crops(dist, ids, labels, n_classes=6)
    assert out["prediction"].tolist() == [0]
    assert out["top5"].tolist() == [[0, 1, 2, 3, 4]]
