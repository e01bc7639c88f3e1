"""k nearest public neighbours of every attacked crop, and the label they vote for (SPEC §3).

Pure functions on arrays: `class_votes` -> `rank_classes` -> prediction and top-5;
`confidence` is the negative Shannon entropy (natural log) of the neighbour label histogram.
"""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd

from .embed import read_embeddings, read_source_rows
from .index import build_index, on_device, prepare


def class_votes(neighbor_labels: np.ndarray, distances: np.ndarray,
                n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) labels and distances -> histogram h (Q, C) and summed distance (Q, C)."""
    q = np.repeat(np.arange(len(neighbor_labels)), neighbor_labels.shape[1])
    hist = np.zeros((len(neighbor_labels), n_classes), np.int64)
    dist = np.zeros((len(neighbor_labels), n_classes), np.float64)
    np.add.at(hist, (q, neighbor_labels.ravel()), 1)
    np.add.at(dist, (q, neighbor_labels.ravel()), distances.ravel())
    return hist, dist


def rank_classes(hist: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(Q, C) classes ordered by more votes, then smaller summed distance, then smaller id.

    Classes with no vote come last (their summed distance is 0, so the vote count decides).
    """
    classes = np.broadcast_to(np.arange(hist.shape[1]), hist.shape)
    return np.lexsort((classes, dist, -hist), axis=-1)


def confidence(hist: np.ndarray) -> np.ndarray:
    """Negative entropy of p = h / k (natural log, 0 log 0 = 0); higher = more confident."""
    p = hist / hist.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


def search(database: np.ndarray | faiss.Index, queries: np.ndarray, k: int,
           metric: str = "l2", device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN: (distances (Q, k), ids (Q, k)), nearest first.

    Distances are squared L2, or 1 - cosine similarity for metric "cosine"."""
    if isinstance(database, np.ndarray):
        database = build_index(database, metric)
    if k > database.ntotal:
        raise ValueError(f"k = {k} exceeds the {database.ntotal} public images")
    dist, ids = on_device(database, device).search(prepare(queries, metric), k)
    return (1 - dist if metric == "cosine" else dist), ids


def label_crops(dist: np.ndarray, ids: np.ndarray, public_labels: np.ndarray,
                n_classes: int) -> dict[str, np.ndarray]:
    """Votes, prediction, top-5 and confidence from the neighbours of each crop."""
    hist, dist_sum = class_votes(public_labels[ids], dist, n_classes)
    order = rank_classes(hist, dist_sum)
    return {"hist": hist, "prediction": order[:, 0], "top5": order[:, :5],
            "confidence": confidence(hist), "mean_distance": dist.mean(axis=1)}


def run(index_path: str, public_path: str, crops_store: str, crops_table: str,
        split_path: str, out_path: str, *, embedding: str, k: int, metric: str = "l2",
        device: str = "auto", threads: int = 1) -> None:
    faiss.omp_set_num_threads(threads)
    split = pd.read_parquet(split_path)
    n_classes = int(split["label"].max()) + 1
    label_of_row = split.drop_duplicates("row").set_index("row")["label"]
    public_rows = read_source_rows(public_path)
    queries, crop_rows = read_embeddings(crops_store, embedding)
    dist, ids = search(faiss.read_index(index_path), queries, k, metric, device)
    neighbors = public_rows[ids]  # dataset rows of the neighbours
    voted = label_crops(dist, ids, label_of_row.loc[public_rows].to_numpy(), n_classes)
    table = pd.read_parquet(crops_table).set_index("crop_row").loc[crop_rows].reset_index()
    out = table[["crop_row", "row", "id", "label", "set"]].copy()
    out["neighbors"] = list(neighbors)
    out["distances"] = list(dist.astype(np.float32))
    out["hist"] = list(voted["hist"])
    out["prediction"] = voted["prediction"]
    out["top5"] = list(voted["top5"])
    out["confidence"] = voted["confidence"]
    out["mean_distance"] = voted["mean_distance"]
    out["correct"] = out["prediction"] == out["label"]
    out["correct_top5"] = [lab in t for lab, t in zip(out["label"], out["top5"])]
    out.to_parquet(out_path, index=False)
