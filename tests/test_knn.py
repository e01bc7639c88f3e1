import numpy as np
import pytest

from dejavu.attack.knn import (chunk_sizes, class_votes, confidence, label_crops, rank_classes, search,
                        torch_search)

pytestmark = pytest.mark.unit


def test_votes_and_distance_sums():
    labels = np.array([[0, 1, 1, 2], [3, 3, 3, 3]])
    dist = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    crop, cls, votes, summed = class_votes(labels, dist)
    assert crop.tolist() == [0, 0, 0, 1] and cls.tolist() == [0, 1, 2, 3]
    assert votes.tolist() == [1, 2, 1, 4] and summed.tolist() == [1.0, 5.0, 4.0, 4.0]


def test_prediction_ties_go_to_smaller_summed_distance_then_smaller_class():
    # classes 0 and 2 have two votes each; in the first crop class 2's neighbours are closer
    labels = np.array([[0, 0, 2, 2], [0, 0, 2, 2]])
    dist = np.array([[2.0, 3.0, 1.0, 2.0], [1.0, 2.0, 1.5, 1.5]])
    crop, cls, votes, summed = class_votes(labels, dist)
    order = rank_classes(crop, cls, votes, summed)
    assert cls[order].tolist() == [2, 0, 0, 2]  # second crop: exact tie -> smaller id
    out = label_crops(dist, np.arange(8).reshape(2, 4), labels.ravel(), n_classes=3)
    assert out["prediction"].tolist() == [2, 0]
    assert out["top5"].tolist() == [[2, 0, 1], [0, 2, 1]]  # class without votes comes last


def test_votes_match_the_dense_histogram_at_many_classes():
    """Blocks of crops (VOTE_BLOCK) and the sparse votes give what a dense crops x classes
    histogram gives: prediction, top-5 and, where classes <= k, bit-identical confidence."""
    from dejavu.attack import knn
    rng = np.random.default_rng(0)
    for classes, k in ((10, 20), (1000, 30), (7, 3)):
        labels = rng.integers(0, classes, 500 + classes) % classes
        ids = rng.integers(0, len(labels), (300, k))
        dist = np.sort(rng.random((300, k)).astype(np.float32), axis=1)
        dist[::7] = 1.0  # exact distance ties
        hist = np.zeros((300, classes), np.int64)
        summed = np.zeros((300, classes))
        np.add.at(hist, (np.arange(300)[:, None], labels[ids]), 1)
        np.add.at(summed, (np.arange(300)[:, None], labels[ids]), dist)
        dense = np.lexsort((np.broadcast_to(np.arange(classes), hist.shape), summed, -hist),
                           axis=-1)
        old_block, knn.VOTE_BLOCK = knn.VOTE_BLOCK, 64
        try:
            out = label_crops(dist, ids, labels, classes)
        finally:
            knn.VOTE_BLOCK = old_block
        np.testing.assert_array_equal(out["prediction"], dense[:, 0])
        np.testing.assert_array_equal(out["top5"], dense[:, :5])
        if classes <= k:
            np.testing.assert_array_equal(out["confidence"], confidence(hist))
        else:
            np.testing.assert_allclose(out["confidence"], confidence(hist), rtol=1e-12)
        rebuilt = np.zeros_like(hist)
        for i in range(300):
            chosen = slice(out["offsets"][i], out["offsets"][i + 1])
            rebuilt[i, out["voted"][chosen]] = out["votes"][chosen]
        np.testing.assert_array_equal(rebuilt, hist)


def test_confidence_is_negative_entropy():
    hist = np.array([[4, 0, 0, 0], [1, 1, 1, 1], [2, 2, 0, 0]])
    c = confidence(hist)
    np.testing.assert_allclose(c, [0.0, -np.log(4), -np.log(2)])
    assert c[0] > c[2] > c[1]


def test_equal_histograms_in_any_class_order_have_bit_identical_confidences():
    """Summed in class order, about a quarter of such pairs differed in the last bit."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        k, classes = (20, 10) if rng.random() < 0.5 else (100, 1000)
        voted = rng.integers(0, int(rng.integers(2, 11)), k)
        hist = np.bincount(voted, minlength=classes)
        rows = np.stack([hist, hist[rng.permutation(classes)], hist[::-1]])
        c = confidence(rows)
        assert c[0] == c[1] == c[2]
        probs = rng.dirichlet(np.ones(classes))  # the correlation classifiers' input
        p = confidence(np.stack([probs, probs[rng.permutation(classes)]]))
        assert p[0] == p[1]


def test_crops_with_equal_votes_in_other_classes_rank_by_mean_distance():
    """Two crops with the counts (3, 2, 1) in different classes: equal confidence, and the
    one whose neighbours are closer is the more confident in the score's order."""
    from dejavu.attack.score import confidence_order
    public_labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 4, 4, 5, 6])
    ids = np.array([[0, 1, 2, 3, 4, 5],          # classes 0, 0, 0, 1, 1, 2
                    [6, 7, 8, 9, 10, 12]])       # classes 3, 3, 3, 4, 4, 6
    dist = np.array([[0.3, 0.5, 0.7, 0.9, 1.1, 1.3],    # mean 0.8
                     [0.2, 0.4, 0.6, 0.8, 1.0, 1.2]])   # mean 0.7: closer
    voted = label_crops(dist, ids, public_labels, 7)
    assert voted["confidence"][0] == voted["confidence"][1]
    order = confidence_order(voted["confidence"], voted["mean_distance"], np.array([0, 1]))
    assert order.tolist() == [1, 0]


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


# ---------------------------------------------------------------- the two backends

def same_neighbours_up_to_ties(d1, i1, d2, i2, rtol=1e-4):
    """Same distances position by position; ids equal except among (near-)equal distances."""
    np.testing.assert_allclose(d1, d2, rtol=rtol, atol=1e-4)
    for row in range(len(i1)):
        dist = d1[row]
        for pos in np.flatnonzero(i1[row] != i2[row]):
            # an id may differ only where its distance ties another one in the list, or
            # at the last place (tied with a neighbour just beyond k)
            others = np.delete(dist, pos)
            assert pos == len(dist) - 1 or np.isclose(dist[pos], others, rtol=rtol,
                                                      atol=1e-4).any(), (row, pos)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("n, d, k, memory_mb", [(2000, 32, 10, 1), (5000, 128, 100, 2),
                                                 (777, 8, 5, None)])
def test_torch_and_faiss_backends_find_the_same_neighbours(metric, n, d, k, memory_mb):
    rng = np.random.default_rng(n)
    db = rng.normal(size=(n, d)).astype(np.float32)
    q = rng.normal(size=(300, d)).astype(np.float32)
    d_faiss, i_faiss = search(db, q, k, metric)
    d_torch, i_torch = search(db, q, k, metric, backend="torch", memory_mb=memory_mb)
    same_neighbours_up_to_ties(d_faiss, i_faiss, d_torch, i_torch)
    assert (i_faiss == i_torch).mean() > 0.999


def test_torch_backend_streams_database_chunks_with_exact_ties():
    # duplicated rows make exact ties; the torch backend puts the smaller id first
    rng = np.random.default_rng(1)
    base = rng.normal(size=(50, 6)).astype(np.float32)
    db = np.concatenate([base, base])
    chunks = [(0, db[:37]), (37, db[37:81]), (81, db[81:])]
    dist, ids = torch_search(chunks, len(db), base[:10], k=4)
    assert (ids[:, 0] == np.arange(10)).all() and (ids[:, 1] == np.arange(10) + 50).all()
    assert (dist[:, :2] < 1e-5).all()


def test_chunk_sizes_keep_blocks_within_the_budget():
    for n_q, dim, k, mb in [(75_000, 8192, 100, 1024), (100, 2048, 100, 16), (10, 8, 5, 16)]:
        q, rows = chunk_sizes(n_q, dim, k, mb)
        assert 1 <= q <= n_q and rows >= k
        assert 4 * q * rows + 4 * rows * dim <= mb * 2**20 * 1.01


def vicreg_like(seed: int = 0, d: int = 8192, queries: int = 48, k: int = 20):
    """Projector outputs of VICReg's scale: 8192-d, a large mean every embedding shares
    (about 5 per dimension, norms near 480), unit spread per dimension. Each query has k
    planted neighbours at squared distances 4, 9, 16, ... (gaps of at least 1 % of the
    distance); the other public vectors lie about 16,000 away."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(5.0, 2.0, d)
    base = mean + rng.normal(0.0, 1.0, (queries, d))
    planted = []
    for q in base:
        directions = rng.normal(size=(k, d))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        planted.append(q + (2.0 + np.arange(k))[:, None] * directions)
    others = mean + rng.normal(0.0, 1.0, (512, d))
    public = np.concatenate(planted + [others])
    order = rng.permutation(len(public))
    return base.astype(np.float32), public[order].astype(np.float32)


def test_vicreg_scale_vectors_find_the_neighbours_of_float64():
    """Such vectors defeat fp16 products: the dot products (near 200,000) overflow fp16,
    and rounded to fp16 the shared mean drowns the gaps between neighbours. The torch
    backend (float32 on every device) and FAISS must both find exactly float64's."""
    import torch
    queries, public = vicreg_like()
    public64 = public.astype(np.float64)
    exact = np.stack([((public64 - q) ** 2).sum(-1) for q in queries.astype(np.float64)])
    expected = np.argsort(exact, axis=1, kind="stable")[:, :20]
    chunks = [(i, public[i:i + 400]) for i in range(0, len(public), 400)]
    dist, ids = torch_search(chunks, len(public), queries, k=20, memory_mb=64)
    np.testing.assert_array_equal(ids, expected)
    # float32's own cancellation: |q|^2 is about 200,000, so distances are good to about
    # 0.15 (seen here), while the planted neighbours are 5 or more apart
    np.testing.assert_allclose(dist, np.take_along_axis(exact, expected, 1), atol=0.5)
    np.testing.assert_array_equal(search(public, queries, 20)[1], expected)
    # what fp16 products would do to the same search
    q16, x16 = torch.from_numpy(queries).half(), torch.from_numpy(public).half()
    assert not torch.isfinite(q16 @ x16[:5].T).all()
