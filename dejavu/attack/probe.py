"""The linear probe (definitions §4): the baseline the paper shows does not reveal memorization.

A multinomial logistic regression on frozen embeddings of the model's own training set,
evaluated on the public test split; the gap is train accuracy minus test accuracy. Beside it,
the k-NN accuracy of the public test images against the public set X (their neighbours in
the stored public embeddings, voted as the attack votes): the second utility of
definitions §10. The job
embeds both sets itself with the embed stage's streaming path (`embed.embed_batches`, the
same eval transform): nothing else reads these embeddings, so they are not stored. Features
are standardised with the training set's mean and spread; the regression is fitted full
batch with L-BFGS and an L2 penalty, so on CPU the result is reproducible to the bit.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import torch

from .embed import auto_batch_size, embed_batches, embed_source
from .embeddings import check_store
from ..core.models import load_checkpoint, pick_device

log = logging.getLogger(__name__)


def fit(x: np.ndarray, y: np.ndarray, classes: int, weight_decay: float = 1e-4,
        steps: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight (C, D), bias (C,), mean (D,), scale (D,)) of a logistic regression on x."""
    x = torch.as_tensor(x, dtype=torch.float32)
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / scale
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    weight = torch.zeros(classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=steps, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                            tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y)
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach(), bias.detach(), mean, scale


def correct(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) bool: whether the fitted regression classifies each row of x right."""
    weight, bias, mean, scale = model
    logits = ((torch.as_tensor(x, dtype=torch.float32) - mean) / scale) @ weight.T + bias
    return logits.argmax(1).numpy() == np.asarray(y)


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(correct(model, x, y).mean())


def embed_rows(model, images, rows: np.ndarray, sizes, side: int, batch_size: int,
               device: torch.device, embedding: str) -> np.ndarray:
    """(N, D) float32: the embedding `embedding` of images[rows] (sorted; `sizes` as
    `embed.embed_batches` takes them), a batch at a time, gathered whole."""
    return np.concatenate([out[embedding] for out in embed_batches(
        model, images, rows, side, batch_size, device, sizes)])


def embed_set(model, images_path: str, split_path: str, label: pd.Series, name: str,
              subset: str | None, side: int, batch_size: int, device: torch.device,
              embedding: str, rows: bool = False):
    """(embeddings (N, D) float32, labels (N,)) of the split set `name` (`train`: `subset`),
    and with `rows` their dataset rows; `label`: class by dataset row."""
    images, set_rows, sizes = embed_source(name, images_path, split_path, subset)
    out = (embed_rows(model, images, set_rows, sizes, side, batch_size, device, embedding),
           label.loc[set_rows].to_numpy())
    return (*out, np.asarray(set_rows)) if rows else out


def knn_correct(public_store: str, x_test: np.ndarray, y_test: np.ndarray,
                label: pd.Series, embedding: str, k: int, metric: str, device: str,
                classes: int) -> np.ndarray:
    """(N,) bool: whether the k nearest public images of each test image (the stored
    `embedding`) vote for its class, ties broken as the attack breaks them."""
    from .embeddings import iter_embeddings, read_source_rows
    from .knn import label_crops, torch_search
    public_rows = read_source_rows(public_store)
    dist, ids = torch_search(iter_embeddings(public_store, embedding), len(public_rows),
                             x_test, k, metric, device)
    voted = label_crops(dist, ids, label.loc[public_rows].to_numpy(), classes)
    return voted["prediction"] == y_test


def run(checkpoint: str, images_path: str, split_path: str, out_path: str, *, subset: str,
        side: int, embedding: str = "backbone", weight_decay: float = 1e-4, steps: int = 100,
        batch_size: int | str = "auto", device: str = "auto", meta: dict | None = None,
        threads: int = 1, public_store: str | None = None, k: int = 20,
        metric: str = "l2", out_correct: str | None = None) -> None:
    """Fit and test the probe; with `public_store`, the k-NN accuracy too. `out_correct`:
    per public test image (dataset row) whether each classifier got it right, for paired
    intervals of a change in utility (definitions §10)."""
    torch.set_num_threads(threads)
    split = pd.read_parquet(split_path)
    classes = int(split["label"].max()) + 1
    model, _ = load_checkpoint(checkpoint)
    dev = pick_device(device)
    if batch_size == "auto":
        batch_size = auto_batch_size(model.to(dev).eval(), side, dev)
    label = split.drop_duplicates("row").set_index("row")["label"]
    x_train, y_train = embed_set(model, images_path, split_path, label, "train", subset, side,
                                 batch_size, dev, embedding)
    x_test, y_test, test_rows = embed_set(model, images_path, split_path, label,
                                          "public_test", None, side, batch_size, dev,
                                          embedding, rows=True)
    fitted = fit(x_train, y_train, classes, weight_decay, steps)
    test_correct = correct(fitted, x_test, y_test)
    train_acc, test_acc = accuracy(fitted, x_train, y_train), float(test_correct.mean())
    per_image = {"row": test_rows, "probe_correct": test_correct}
    result = {**(meta or {}), "embedding": embedding, "train_acc": train_acc,
              "test_acc": test_acc, "gap": train_acc - test_acc, "n_train": len(y_train),
              "n_test": len(y_test)}
    if public_store is not None:
        check_store(public_store, checkpoint, "public")
        per_image["knn_correct"] = knn_correct(public_store, x_test, y_test, label, embedding,
                                               k, metric, device, classes)
        result.update(knn_test_acc=float(per_image["knn_correct"].mean()), knn_k=k)
    if out_correct is not None:
        pd.DataFrame(per_image).to_parquet(out_correct, index=False)
    log.info("linear probe on %s of set %s: train %.3f, test %.3f, gap %.3f", embedding,
             subset, train_acc, test_acc, train_acc - test_acc)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
