"""A VLM's embedding store (dejavu/vlm/embeddings.py) written in batches of any size a chunk
at a time and read back as rows or as streamed blocks; the test (dejavu/vlm/scoring.py)
gives the same per-record scores whatever its block of queries and the store's chunks."""

import numpy as np
import pytest

from dejavu.vlm import embeddings, objects, scoring

pytestmark = pytest.mark.unit


def write(path, image, text, chunk_rows, batches):
    writer = embeddings.Writer(str(path), len(image), {"image": image.shape[1],
                                                       "text": text.shape[1]}, chunk_rows)
    at = 0
    for size in batches:
        writer.add(image=image[at:at + size], text=text[at:at + size])
        at += size
    writer.close()
    return embeddings.open_store(str(path))


def test_rows_written_in_odd_batches_read_back_whole_by_rows_and_by_blocks(tmp_path):
    rng = np.random.default_rng(0)
    image, text = rng.standard_normal((13, 5)), rng.standard_normal((13, 3))
    store = write(tmp_path / "e.zarr", image, text, chunk_rows=4, batches=[3, 3, 5, 2])
    assert not (tmp_path / "e.zarr.partial").exists()
    assert np.array_equal(store["image"][:], image.astype(np.float32))
    rows = np.array([0, 2, 5, 6, 7, 12])
    assert np.array_equal(embeddings.rows_of(store, "text", rows), text[rows].astype(np.float32))
    blocks = list(embeddings.blocks_of(store, "image", rows))
    assert [offset for offset, _ in blocks] == [0, 2, 5]  # chunks 0-3, 4-7, 12: 8-11 none
    assert np.array_equal(np.concatenate([b for _, b in blocks]),
                          image[rows].astype(np.float32))


def test_a_store_short_of_rows_is_not_finished(tmp_path):
    writer = embeddings.Writer(str(tmp_path / "e.zarr"), 5, {"image": 2}, 4)
    writer.add(image=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="3 rows written of 5"):
        writer.close()
    assert not (tmp_path / "e.zarr").exists()


def test_the_scores_do_not_depend_on_the_query_block_or_the_chunks(tmp_path):
    rng = np.random.default_rng(1)
    n, vocabulary = 60, 8
    sets = [list(rng.choice(vocabulary, 3, replace=False)) for _ in range(n)]
    hot = objects.multi_hot(sets, vocabulary)
    image = hot + 0.3 * rng.standard_normal(hot.shape)
    text = hot + 0.3 * rng.standard_normal(hot.shape)
    public, scored = np.arange(0, n, 2), np.arange(1, n, 2)
    results = []
    for chunk_rows, query_rows in ((64, 1000), (7, 4)):
        store = write(tmp_path / f"e{chunk_rows}.zarr", image, text, chunk_rows, [n])
        results.append(scoring.scored(store, "t2i", scored, hot[scored], public, hot[public],
                                      [1, 5], ["top1", "all"], query_rows, "cpu"))
    for key, values in results[0].items():
        for one, other in zip(values, results[1][key]):
            assert np.array_equal(one, other, equal_nan=True)
