"""The vision-language test on embeddings (definitions §14): each record's caption
embedding queried against the public records' image embeddings (text-to-image) or caption
embeddings (text-to-text), its neighbours' objects predicted for it, and the population
gaps of target against reference, in both directions and with bootstrap intervals.

Neighbours come from the k-NN attack's exact search (`attack.knn.torch_search`, cosine);
the largest k is searched once and smaller k read off its first columns. Records are
processed a chunk at a time: memory follows the chunk, the vocabulary and k.
"""

from __future__ import annotations

import numpy as np

from . import gaps, objects

CHUNK = 4096  # records whose neighbours' objects are held at once (chunk x k x V bools)


def neighbours(queries: np.ndarray, public: np.ndarray, k: int,
               device: str = "cpu") -> np.ndarray:
    """(n, k) indices of each query's k nearest public rows by cosine, nearest first."""
    from ..attack.knn import torch_search
    _, ids = torch_search([(0, public)], len(public), queries, k, metric="cosine",
                          device=device)
    return ids


def per_record(found: np.ndarray, public_objects: np.ndarray, true: np.ndarray,
               ks, modes) -> dict[tuple[int, str], tuple[np.ndarray, ...]]:
    """Per (k, mode): precision, recall and hits of each record, from its neighbours
    `found` (n, K >= max k, nearest first) and the public records' objects (P, V)."""
    out = {(k, mode): ([], [], []) for k in ks for mode in modes}
    for lo in range(0, len(found), CHUNK):
        rows = slice(lo, lo + CHUNK)
        for k in ks:
            theirs = public_objects[found[rows, :k]]  # (chunk, k, V)
            for mode in modes:
                scores = objects.precision_recall(objects.predict(theirs, mode), true[rows])
                for acc, part in zip(out[k, mode], scores):
                    acc.append(part)
    return {key: tuple(np.concatenate(parts).astype(np.float32) for parts in acc)
            for key, acc in out.items()}  # float32: 12 bytes per record, key and model


def direction(found_t: np.ndarray, found_r: np.ndarray, public_objects: np.ndarray,
              true: np.ndarray, ks, modes) -> dict[tuple[int, str], dict[str, float]]:
    """One direction's gaps (records of one set; target trained on them, reference not)."""
    target = per_record(found_t, public_objects, true, ks, modes)
    reference = per_record(found_r, public_objects, true, ks, modes)
    return {key: gaps.gaps(*target[key], *reference[key]) for key in target}


def averaged(*directions: dict) -> dict:
    """The directions' numbers averaged, key by key (two: the swap of target and
    reference)."""
    first = directions[0]
    return {key: {name: sum(d[key][name] for d in directions) / len(directions)
                  for name in first[key]} for key in first}


def bootstrap(target: tuple[np.ndarray, ...], reference: tuple[np.ndarray, ...],
              n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """(n_boot,) resampled values of each gap of one direction at one (k, mode), from the
    target's and the reference's per-record (precision, recall, hits): records drawn with
    replacement."""
    n = len(target[0])
    rng = np.random.default_rng(seed)
    draws = [gaps.gaps(*(x[idx] for x in target), *(x[idx] for x in reference))
             for idx in (rng.integers(0, n, n) for _ in range(n_boot))]
    return {name: np.array([d[name] for d in draws]) for name in draws[0]}
