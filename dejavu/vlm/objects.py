"""Which objects a vision-language model reveals of a training record from its caption
alone (definitions §14): the objects predicted from its nearest public records, and the
precision and recall of that prediction against the record's own objects.

Objects are ids 0..V-1 of a vocabulary; a set of records' objects is an (n, V) boolean
matrix (multi-hot), small for the vocabularies the tests use (COCO: 80 categories), and
processed a chunk of records at a time by the callers. Torch-free.
"""

from __future__ import annotations

import numpy as np

MODES = {"top1": 1, "top10": 10, "all": None}  # how many of the neighbours' objects


def multi_hot(objects: list, vocabulary: int) -> np.ndarray:
    """(n, V) bool from n lists of object ids."""
    out = np.zeros((len(objects), vocabulary), bool)
    for i, ids in enumerate(objects):
        ids = np.asarray(list(ids), np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= vocabulary):
            raise ValueError(f"record {i}: object ids {ids.tolist()} outside the vocabulary "
                             f"of {vocabulary}")
        out[i, ids] = True
    return out


def predict(neighbour_objects: np.ndarray, mode: str) -> np.ndarray:
    """(n, V) bool: the objects predicted for each of n records from its k neighbours'
    objects (n, k, V) bool -- the most frequent one among the neighbours (top1), the ten
    most frequent (top10) or every one any neighbour has (all). Ties of frequency go to the
    smaller object id; an object no neighbour has is never predicted."""
    if mode not in MODES:
        raise ValueError(f"unknown prediction mode {mode!r}; known: {sorted(MODES)}")
    counts = neighbour_objects.sum(axis=1)  # (n, V)
    present = counts > 0
    if MODES[mode] is None:
        return present
    n, vocabulary = counts.shape
    # stable sort by count, descending: equal counts keep increasing id order
    order = np.argsort(-counts, axis=1, kind="stable")[:, :MODES[mode]]
    chosen = np.zeros((n, vocabulary), bool)
    np.put_along_axis(chosen, order, True, axis=1)
    return chosen & present


def precision_recall(predicted: np.ndarray, true: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record (n,): precision |P ∩ T| / |P| (0 when nothing is predicted), recall
    |P ∩ T| / |T| (NaN for a record without objects: the caller leaves it out) and the hits
    |P ∩ T|, of predicted objects P against true objects T, both (n, V) bool."""
    hits = (predicted & true).sum(axis=1)
    n_pred, n_true = predicted.sum(axis=1), true.sum(axis=1)
    precision = np.divide(hits, n_pred, out=np.zeros(len(hits)), where=n_pred > 0)
    recall = np.divide(hits, n_true, out=np.full(len(hits), np.nan), where=n_true > 0)
    return precision, recall, hits


def unnamed(true: np.ndarray, named: np.ndarray) -> np.ndarray:
    """The true objects a record's caption does not name (`named` (n, V) bool): what the
    test may score alone, so that reading an object off the caption counts for nothing."""
    return true & ~named
