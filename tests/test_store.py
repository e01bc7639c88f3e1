import pytest
import numpy as np

from dejavu.store import open_images, read_rows, write_images

pytestmark = pytest.mark.unit


def test_read_rows_equals_numpy_indexing_for_dense_sparse_and_empty_rows(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    write_images(tmp_path / "i.zarr", images, chunk_rows=8)
    store = open_images(tmp_path / "i.zarr")
    for rows in ([], [5], list(range(3, 19)), [2, 3, 5, 8, 9], [0, 17, 39], [7, 8, 30, 31]):
        np.testing.assert_array_equal(read_rows(store, rows), images[np.array(rows, int)])
