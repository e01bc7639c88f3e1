"""Accuracy on a second dataset (definitions §12): an encoder probed on a dataset it was not
trained on, as the SSLMem paper measures what removing memorized images costs downstream.

The dataset is any dejavu dataset store (`images.zarr` beside its `index.parquet`), made by
the dataset stages of another config, so its bad input was skipped and recorded there. Its
images are split once, by class and with a seed, into a part the linear probe is fit on and
a part it is tested on; the k-NN accuracy votes each tested image's `k` nearest fitted
images. Both parts' embeddings are held while fitting (float32, as the probe's own).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import torch

from . import probe
from .embed import auto_batch_size
from .knn import label_crops, torch_search
from ..core.models import load_checkpoint, pick_device
from ..core.store import open_images

log = logging.getLogger(__name__)
PARTS = ("fit", "test")


def split(index: pd.DataFrame, test_fraction: float, seed: int) -> pd.DataFrame:
    """The store's images (`row`: position in the index) with their `label` and `part`:
    per class, round(test_fraction x its images) drawn with `seed` are tested, at least
    one and never all of a class with two or more images; a class of one image is fit."""
    rng = np.random.default_rng(seed)
    table = index.reset_index(drop=True).assign(row=np.arange(len(index)), part="fit")
    for _, rows in table.groupby("label", sort=True):
        n = len(rows)
        tested = 0 if n < 2 else min(max(round(test_fraction * n), 1), n - 1)
        chosen = rng.permutation(rows.index.to_numpy())[:tested]
        table.loc[chosen, "part"] = "test"
    keep = [c for c in ("row", "id", "label", "part", "height", "width") if c in table]
    return table[keep]


def embed_part(model, images, table: pd.DataFrame, part: str, side: int, batch_size: int,
               device: torch.device, embedding: str) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (N, D) float32, labels (N,)) of one part, its rows in store order."""
    chosen = table[table["part"] == part].sort_values("row")
    sizes = ((chosen["height"].to_numpy(), chosen["width"].to_numpy())
             if "height" in chosen else None)
    rows = chosen["row"].to_numpy().astype(np.int64)
    return (probe.embed_rows(model, images, rows, sizes, side, batch_size, device, embedding),
            chosen["label"].to_numpy())


def knn_accuracy(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, k: int, metric: str, device: str, classes: int) -> float:
    """Share of tested images whose k nearest fitted images vote for their class (ties
    broken as the attack breaks them)."""
    dist, ids = torch_search([(0, x_fit)], len(x_fit), x_test, min(k, len(x_fit)), metric,
                             device)
    return float((label_crops(dist, ids, y_fit, classes)["prediction"] == y_test).mean())


def run(checkpoint: str, images_path: str, index_path: str, out_path: str, *, dataset: str,
        test_fraction: float, seed: int, side: int, embedding: str = "backbone",
        weight_decay: float = 1e-4, steps: int = 100, batch_size: int | str = "auto",
        device: str = "auto", meta: dict | None = None, threads: int = 1, k: int = 20,
        metric: str = "l2") -> None:
    """The downstream_probe stage: fit and test the probe on the dataset `dataset`, and its
    k-NN accuracy, into one JSON beside the run's own probe."""
    torch.set_num_threads(threads)
    table = split(pd.read_parquet(index_path), test_fraction, seed)
    classes = int(table["label"].max()) + 1
    model, _ = load_checkpoint(checkpoint)
    dev = pick_device(device)
    if batch_size == "auto":
        batch_size = auto_batch_size(model.to(dev).eval(), side, dev)
    images = open_images(images_path)
    (x_fit, y_fit), (x_test, y_test) = (
        embed_part(model, images, table, part, side, batch_size, dev, embedding)
        for part in PARTS)
    fitted = probe.fit(x_fit, y_fit, classes, weight_decay, steps)
    result = {**(meta or {}), "dataset": dataset, "embedding": embedding,
              "train_acc": probe.accuracy(fitted, x_fit, y_fit),
              "test_acc": probe.accuracy(fitted, x_test, y_test),
              "knn_test_acc": knn_accuracy(x_fit, y_fit, x_test, y_test, k, metric, device,
                                           classes),
              "knn_k": k, "n_train": len(y_fit), "n_test": len(y_test)}
    log.info("downstream %s: probe on %s fit %.3f, test %.3f; k-NN test %.3f", dataset,
             embedding, result["train_acc"], result["test_acc"], result["knn_test_acc"])
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
