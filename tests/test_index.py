"""The FAISS index stage (dejavu.attack.index): a planted neighbour is found, for both metrics,
through the same files the workflow writes."""

import faiss
import numpy as np
import pytest
import zarr

from dejavu.attack.index import build_index, faiss_device, on_device, prepare, run

pytestmark = pytest.mark.unit


def planted(d=16, n=200, seed=0):
    """A database and queries, each query a small step from one chosen database row."""
    rng = np.random.default_rng(seed)
    database = rng.normal(size=(n, d)).astype(np.float32)
    targets = rng.choice(n, size=20, replace=False)
    queries = database[targets] + 1e-3 * rng.normal(size=(20, d)).astype(np.float32)
    return database, queries, targets


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_index_returns_the_planted_neighbour(metric):
    database, queries, targets = planted()
    if metric == "cosine":  # scale must not matter: rows rescaled, queries not
        database = database * np.linspace(0.5, 5, len(database), dtype=np.float32)[:, None]
    index = build_index(database, metric)
    assert index.ntotal == len(database)
    dist, ids = index.search(prepare(queries, metric), 3)
    assert (ids[:, 0] == targets).all()
    assert (dist[:, 0] >= dist[:, 1]).all() if metric == "cosine" else \
        (dist[:, 0] <= dist[:, 1]).all()


def test_l2_distances_are_squared_euclidean():
    database, queries, _ = planted()
    dist, ids = build_index(database, "l2").search(prepare(queries, "l2"), 1)
    expected = ((queries - database[ids[:, 0]]) ** 2).sum(1)
    np.testing.assert_allclose(dist[:, 0], expected, rtol=1e-4, atol=1e-6)


def test_cosine_vectors_are_unit_length_and_an_unknown_metric_is_refused():
    x = prepare(np.array([[3.0, 4.0], [0.0, 0.0]]), "cosine")
    np.testing.assert_allclose(np.linalg.norm(x[0]), 1.0, rtol=1e-6)
    assert np.isfinite(x).all()  # a zero vector stays zero, no division by zero
    with pytest.raises(ValueError, match="unknown k-NN metric"):
        prepare(x, "manhattan")


def test_the_cpu_is_used_without_faiss_gpu_and_cuda_without_a_gpu_is_an_error():
    assert faiss_device("cpu") == "cpu"
    if faiss.get_num_gpus() == 0:
        assert faiss_device("auto") == "cpu"
        index = build_index(planted()[0])
        assert on_device(index, "auto") is index
        with pytest.raises(RuntimeError, match="faiss-gpu"):
            faiss_device("cuda")


def test_run_writes_an_index_of_a_store_that_finds_the_planted_rows(tmp_path):
    database, queries, targets = planted()
    store = zarr.open_group(tmp_path / "public.zarr", mode="w")
    store.create_array("projector", data=database, chunks=(64, database.shape[1]))
    store.create_array("source_row", data=np.arange(len(database)), chunks=(64,))
    run(str(tmp_path / "public.zarr"), str(tmp_path / "projector.faiss"),
        embedding="projector")
    index = faiss.read_index(str(tmp_path / "projector.faiss"))
    assert (index.search(prepare(queries, "l2"), 1)[1][:, 0] == targets).all()
