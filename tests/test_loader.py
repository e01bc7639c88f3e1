"""Training reads its set from the store: kept on the device when it fits `cache_mb`, else
streamed a batch at a time by worker threads. Both give the same weights, bit for bit."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dejavu.core.deadline import OutOfTime
from dejavu.core.store import write_images
from dejavu.data.split import SetImages, read_set
from dejavu.training.loader import Loader, LoaderConfig
from dejavu.training.train import (SaveTo, TrainConfig, init_model, train,
                                   train_processes)

pytestmark = pytest.mark.unit

CANVAS, SIDE = 20, 16


def stored_set(tmp_path, n=30):
    """A store of `n` 20 px canvases whose images fill regions of several sizes (so reading
    resizes them, like ImageNet's), and a split whose set A is every other row."""
    rng = np.random.default_rng(0)
    canvases = np.zeros((n, CANVAS, CANVAS, 3), np.uint8)
    sizes = [(20, 20), (20, 14), (12, 20), (17, 17)]
    heights, widths = zip(*(sizes[i % len(sizes)] for i in range(n)))
    for i, (h, w) in enumerate(zip(heights, widths)):
        canvases[i, :h, :w] = rng.integers(0, 256, size=(h, w, 3))
    write_images(tmp_path / "images.zarr", canvases, chunk_rows=4)
    split = pd.DataFrame({"id": [f"i{i}" for i in range(n)], "row": range(n),
                          "set": ["A" if i % 2 else "public" for i in range(n)],
                          "label": [i % 3 for i in range(n)], "height": heights,
                          "width": widths})
    split.to_parquet(tmp_path / "split.parquet")
    return str(tmp_path / "images.zarr"), str(tmp_path / "split.parquet")


def test_a_batch_read_from_the_store_equals_the_same_rows_of_the_whole_set(tmp_path):
    images, split = stored_set(tmp_path)
    whole, chosen = read_set(images, split, "A", SIDE)
    streamed = SetImages(images, split, "A", SIDE)
    assert len(streamed) == len(whole) == 15 and whole.shape[1:] == (SIDE, SIDE, 3)
    positions = np.array([9, 0, 14, 3, 4])  # any order, as a shuffled batch asks
    assert np.array_equal(streamed.read(positions), whole[positions])
    assert np.array_equal(streamed.labels, chosen["label"].to_numpy())


def test_a_set_over_the_cache_streams_and_one_under_it_stays_on_the_device(tmp_path):
    images = SetImages(*stored_set(tmp_path), "A", SIDE)
    parts = [torch.tensor([3, 1]), torch.tensor([0, 2, 14])]
    resident = Loader(images, LoaderConfig(cache_mb=1), torch.device("cpu"))
    streamed = Loader(images, LoaderConfig(cache_mb=0, workers=2, prefetch=1),
                      torch.device("cpu"))
    assert resident.resident is not None and streamed.resident is None
    for a, b in zip(resident.batches(parts), streamed.batches(parts), strict=True):
        assert a.shape == b.shape and a.is_contiguous() and b.is_contiguous()
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", ["vicreg", "supervised"])
def test_streamed_training_reaches_the_weights_of_training_on_the_device(tmp_path, method):
    images = SetImages(*stored_set(tmp_path), "A", SIDE)
    labels = images.labels
    runs = []
    for loader in (LoaderConfig(), LoaderConfig(cache_mb=0, workers=2, prefetch=2)):
        model = init_model("convnet", [16, 8], 4, 0, image_size=SIDE)
        cfg = TrainConfig(method=method, epochs=2, batch_size=8, warmup_epochs=1, seed=3,
                          device="cpu", classes=3)
        kept = {}
        train(model, images, cfg, lambda e, m, s: kept.update(m.state_dict()), labels=labels,
              loader=loader)
        runs.append(kept)
    assert runs[0].keys() == runs[1].keys()
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name


def test_streamed_data_parallel_training_equals_it_on_the_device(tmp_path):
    """Two gloo processes, each reading only its slice of every batch from the store, reach
    the weights of the same two processes holding the set; also when the streamed run
    stops at a deadline after epoch 1 and a second call continues it."""
    images = SetImages(*stored_set(tmp_path), "A", SIDE)
    cfg = TrainConfig(epochs=2, batch_size=8, warmup_epochs=1, seed=3, device="cpu")
    states = []
    for name, loader in (("held", LoaderConfig()),
                         ("streamed", LoaderConfig(cache_mb=0, workers=1, prefetch=1))):
        path, resume = str(tmp_path / f"{name}.pt"), str(tmp_path / f"{name}-resume")

        def run(deadline):
            train_processes(2, init_model("convnet", [16, 8], 4, 0, image_size=SIDE), images,
                            cfg, SaveTo({2: path}), resume, threads=2, loader=loader,
                            deadline=deadline)
        if name == "streamed":
            with pytest.raises(OutOfTime):
                run(deadline=0.0)
            assert not Path(path).exists() and Path(resume, "state.pt").exists()
        run(deadline=None)
        states.append(torch.load(path, weights_only=True)["state_dict"])
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name
