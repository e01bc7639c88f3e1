import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from dejavu.attack.embed import embed_batches, run_shard
from dejavu.attack.embeddings import check_store, finalize, read_embeddings
from dejavu.core.models import load_checkpoint
from dejavu.core.store import shard_range
from dejavu.core.store import open_images, write_images
from dejavu.training.train import run_init

pytestmark = pytest.mark.unit


def test_shard_ranges_cover_all_rows_once_on_shard_boundaries():
    for n_rows in (0, 1, 15, 16, 17, 100, 1000):
        for shard_rows in (1, 7, 16):
            for jobs in (1, 2, 3, 5):
                ranges = [shard_range(j, jobs, n_rows, shard_rows) for j in range(jobs)]
                covered = [r for a, b in ranges for r in range(a, b)]
                assert covered == list(range(n_rows))
                assert all(a % shard_rows == 0 or a == n_rows for a, _ in ranges)


@pytest.fixture()
def source(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(53, 12, 12, 3), dtype=np.uint8)
    write_images(tmp_path / "images.zarr", images, chunk_rows=10)
    table = pd.DataFrame({"row": np.arange(53), "set": ["public"] * 50 + ["A"] * 3})
    table.to_parquet(tmp_path / "split.parquet")
    run_init(str(tmp_path / "model.pt"), backbone="convnet", projector_dims=[16, 8], width=4,
             seed=0, subset="A")
    return tmp_path


SHARD_ARGS = dict(part="public", jobs=3, side=16, shard_rows=8, chunk_rows=4, batch_size=5,
                  dtype="float32")


def shard(src, job, **kw):
    run_shard(str(src / "model.pt"), str(src / "images.zarr"), str(src / "split.parquet"),
              str(src / "out.zarr"), str(src / f"m{job}.json"), job=job, **{**SHARD_ARGS, **kw})


def reference(src, names=("backbone", "projector")):
    model, _ = load_checkpoint(str(src / "model.pt"))
    blocks = list(embed_batches(model, open_images(src / "images.zarr"), np.arange(50), 16, 64,
                                torch.device("cpu"), names=names))
    return tuple(np.concatenate([b[name] for b in blocks]) for name in names)


def test_concurrent_shard_jobs_equal_one_process(source):
    code = ("import sys; sys.path.insert(0, {tests!r}); from test_embed import shard; "
            "from pathlib import Path; shard(Path({src!r}), {job})")
    procs = [subprocess.Popen([sys.executable, "-c", code.format(
        tests=str(Path(__file__).parent), src=str(source), job=j)]) for j in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0]
    finalize([str(source / f"m{j}.json") for j in range(3)], str(source / "out.zarr"))
    backbone, rows = read_embeddings(str(source / "out.zarr"), "backbone")
    projector, _ = read_embeddings(str(source / "out.zarr"), "projector")
    ref_b, ref_p = reference(source)
    np.testing.assert_array_equal(rows, np.arange(50))
    np.testing.assert_allclose(backbone, ref_b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(projector, ref_p, rtol=1e-5, atol=1e-6)
    assert not (source / "out.zarr.partial").exists()


def test_finalize_refuses_incomplete_store(source):
    shard(source, 0)
    shard(source, 1)
    with pytest.raises(RuntimeError, match="expected reports"):
        finalize([str(source / "m0.json"), str(source / "m1.json")], str(source / "out.zarr"))
    shard(source, 2)
    [missing] = (source / "out.zarr.partial").glob("*/projector/c/3/0")  # the jobs' store
    missing.unlink()
    with pytest.raises(RuntimeError, match="missing shards.*projector/c/3"):
        finalize([str(source / f"m{j}.json") for j in range(3)], str(source / "out.zarr"))
    assert not (source / "out.zarr").exists()
    # rerunning the job that owns the lost shard repairs the store
    report = json.loads((source / "m1.json").read_text())
    assert report["start"] <= 3 * 8 < report["stop"]
    shard(source, 1)
    finalize([str(source / f"m{j}.json") for j in range(3)], str(source / "out.zarr"))
    np.testing.assert_allclose(read_embeddings(str(source / "out.zarr"), "projector")[0],
                               reference(source)[1], rtol=1e-5, atol=1e-6)


def test_partial_store_of_another_model_is_replaced(source):
    shard(source, 0)
    run_init(str(source / "model.pt"), backbone="convnet", projector_dims=[16, 8], width=4,
             seed=1, subset="A")
    for j in range(3):
        shard(source, j)
    finalize([str(source / f"m{j}.json") for j in range(3)], str(source / "out.zarr"))
    np.testing.assert_allclose(read_embeddings(str(source / "out.zarr"), "backbone")[0],
                               reference(source)[0], rtol=1e-5, atol=1e-6)


def test_float16_store_is_the_float32_embedding_rounded(source):
    for j in range(3):
        shard(source, j, dtype="float16", batch_size="auto")
    finalize([str(source / f"m{j}.json") for j in range(3)], str(source / "out.zarr"),
             checkpoint=str(source / "model.pt"))
    group = zarr.open_group(str(source / "out.zarr"), mode="r")
    assert group["projector"].dtype == np.float16
    assert "shorter side 16" in group.attrs["transform"] and group.attrs["epoch"] == 0
    ref_b, ref_p = reference(source)
    np.testing.assert_array_equal(group["projector"][:], ref_p.astype(np.float16))
    np.testing.assert_array_equal(group["backbone"][:], ref_b.astype(np.float16))


def test_a_store_of_another_checkpoint_is_rejected(source):
    for j in range(3):
        shard(source, j)
    finalize([str(source / f"m{j}.json") for j in range(3)], str(source / "out.zarr"),
             checkpoint=str(source / "model.pt"))
    check_store(str(source / "out.zarr"), str(source / "model.pt"), "public")
    with pytest.raises(ValueError, match="expects part 'crops-periphery'"):
        check_store(str(source / "out.zarr"), str(source / "model.pt"), "crops-periphery")
    run_init(str(source / "model.pt"), backbone="convnet", projector_dims=[16, 8], width=4,
             seed=1, subset="A")  # the checkpoint changed under the store
    with pytest.raises(ValueError, match="delete the store and rerun"):
        check_store(str(source / "out.zarr"), str(source / "model.pt"), "public")


def test_embedding_streams_one_shard_at_a_time(source, monkeypatch):
    """Each array write covers exactly one whole shard: memory holds one shard."""
    import zarr.core.array as zarray
    writes = []
    original = zarray.Array.__setitem__

    def spy(self, key, value):
        writes.append((key.start, key.stop))
        return original(self, key, value)

    monkeypatch.setattr(zarray.Array, "__setitem__", spy)
    shard(source, 0, jobs=1)
    spans = sorted(set(writes))
    assert spans == [(s, min(s + 8, 50)) for s in range(0, 50, 8)]


def test_a_store_with_intermediate_layers_holds_each_as_computed_in_one_pass(source):
    """knn.embeddings with layers along depth: the store holds them beside the outputs (each
    shard job and the finalize check every array); the outputs are as without them."""
    inner = ["hidden1", "block2"]
    for j in range(3):
        shard(source, j, inner=inner)
    [partial] = (source / "out.zarr.partial").iterdir()
    assert (partial / "block2" / "c" / "0" / "0").exists()
    (partial / "block2" / "c" / "0" / "0").unlink()
    with pytest.raises(RuntimeError, match="missing shards.*block2/c/0"):
        finalize([str(source / f"m{j}.json") for j in range(3)], str(source / "out.zarr"))
    shard(source, 0, inner=inner)
    finalize([str(source / f"m{j}.json") for j in range(3)], str(source / "out.zarr"))
    store = str(source / "out.zarr")
    assert zarr.open_group(store, mode="r").attrs["arrays"] == ["backbone", "projector",
                                                                 "block2", "hidden1"]
    names = ("backbone", "projector", "block2", "hidden1")
    for name, expected in zip(names, reference(source, names)):
        np.testing.assert_allclose(read_embeddings(store, name)[0], expected, rtol=1e-5,
                                   atol=1e-6)
    assert read_embeddings(store, "block2")[0].shape[1] == 8  # width 4, second block
    with pytest.raises(KeyError, match=r"holds the embeddings .*'block2'.*, not 'block3'"):
        read_embeddings(store, "block3")
