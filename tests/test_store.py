import os
from pathlib import Path

import numpy as np
import pytest

from dejavu.core.store import open_images, read_rows, store_key, write_images

pytestmark = pytest.mark.unit


def test_read_rows_equals_numpy_indexing_for_dense_sparse_and_empty_rows(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    write_images(tmp_path / "i.zarr", images, chunk_rows=8)
    store = open_images(tmp_path / "i.zarr")
    for rows in ([], [5], list(range(3, 19)), [2, 3, 5, 8, 9], [0, 17, 39], [7, 8, 30, 31]):
        np.testing.assert_array_equal(read_rows(store, rows), images[np.array(rows, int)])


def test_scattered_rows_hold_one_decompressed_chunk_not_every_chunk_they_touch(tmp_path):
    """One row from each of 16 chunks of 48 KB: the read's peak allocation (tracemalloc
    sees numpy's and the codecs' buffers) stays near one chunk, where decoding all 16 at
    once (an orthogonal selection) holds them all."""
    import tracemalloc
    images = np.random.default_rng(0).integers(0, 256, (16 * 64, 16, 16, 3), dtype=np.uint8)
    write_images(tmp_path / "i.zarr", images, chunk_rows=64)
    store = open_images(tmp_path / "i.zarr")
    rows = np.arange(16) * 64 + 5
    chunk_bytes = 64 * 16 * 16 * 3

    def peak(read) -> int:
        tracemalloc.start()
        try:
            out = read()
            return tracemalloc.get_traced_memory()[1], out
        finally:
            tracemalloc.stop()

    ours, out = peak(lambda: read_rows(store, rows))
    theirs, _ = peak(lambda: store.get_orthogonal_selection((rows,)))
    np.testing.assert_array_equal(out, images[rows])
    # measured: ours about 3 chunks (a chunk's compressed and decoded bytes), theirs 23
    assert ours < 6 * chunk_bytes and theirs > 12 * chunk_bytes, (ours, theirs, chunk_bytes)


def test_a_sharded_embedding_store_is_written_in_parts_and_finalized(tmp_path):
    """The layout embed jobs write (one Zarr shard file per `shard_rows` rows), filled by two
    jobs, checked shard file by shard file and moved into place: the zarr-version-sensitive
    part of the embedding path (zarr 3.1 and 3.2+ name shard files the same way)."""
    import json

    from dejavu.attack.embeddings import finalize, missing_shards, open_partial, read_embeddings

    out = str(tmp_path / "public.zarr")
    n, shard = 10, 4
    attrs = {"jobs": 2, "n_rows": n, "shard_rows": shard, "part": "public",
             "checkpoint_sha256": "0" * 64}
    rng = np.random.default_rng(0)
    data = {"backbone": rng.normal(size=(n, 3)), "projector": rng.normal(size=(n, 5))}
    group = open_partial(out + ".partial", n, {"backbone": 3, "projector": 5}, shard, 2,
                         "float32", attrs)
    store = os.path.join(out + ".partial", store_key(attrs))
    assert sorted(missing_shards(store, n, shard)) == sorted(
        f"{a}/c/{s}" for a in ("backbone", "projector", "source_row") for s in range(3))
    markers = []
    for job, (start, stop) in enumerate([(0, 8), (8, 10)]):  # whole shards per job
        for name, values in data.items():
            group[name][start:stop] = values[start:stop]
        group["source_row"][start:stop] = np.arange(start, stop) + 100
        marker = tmp_path / f"job{job}.json"
        marker.write_text(json.dumps({"job": job, "start": start, "stop": stop,
                                      "checkpoint_sha256": "0" * 64,
                                      "store": store_key(attrs)}))
        markers.append(str(marker))
    assert missing_shards(store, n, shard) == []
    finalize(markers, out)
    assert not os.path.exists(out + ".partial")
    x, rows = read_embeddings(out, "projector")
    np.testing.assert_allclose(x, data["projector"].astype(np.float32))
    assert list(rows) == list(range(100, 110))


RACE = """
import sys, zarr
from dejavu.core.store import open_or_create
path, tag = sys.argv[1], sys.argv[2]
attrs = {"source": "model-2"}
node = open_or_create(path, attrs, lambda p: zarr.create_array(
    store=p, shape=(64,), dtype="int64", chunks=(8,), attributes=attrs))
node[int(tag) * 8:int(tag) * 8 + 8] = int(tag)
"""


def test_shard_jobs_racing_to_make_one_store_share_it_without_a_lock(tmp_path):
    """Eight processes start at once where a store made for another source lies; exactly
    one new store is made, holding every job's rows (none written into a store another job
    moved away), beside the old one, which only the finalizing step removes; nothing else
    is left (no lock file: cluster file systems may refuse locks)."""
    import subprocess
    import sys

    import zarr
    from dejavu.core.store import finish_partial, open_or_create, partial_store, store_key
    path = str(tmp_path / "store.zarr.partial")
    open_or_create(path, {"source": "model-1"}, lambda p: zarr.create_array(
        store=p, shape=(3,), dtype="int64", attributes={"source": "model-1"}))
    jobs = [subprocess.Popen([sys.executable, "-c", RACE, path, str(j)]) for j in range(8)]
    assert [job.wait(timeout=120) for job in jobs] == [0] * 8
    new, old = (store_key({"source": s}) for s in ("model-2", "model-1"))
    assert sorted(p.name for p in Path(path).iterdir()) == sorted([new, old])
    store = partial_store(path, [new] * 8)
    np.testing.assert_array_equal(zarr.open_array(store, mode="r")[:], np.repeat(np.arange(8), 8))
    finish_partial(path, store, str(tmp_path / "store.zarr"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]
    assert dict(zarr.open_array(str(tmp_path / "store.zarr"), mode="r").attrs) == {
        "source": "model-2"}
