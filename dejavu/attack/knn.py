"""k nearest public neighbours of every attacked crop, and the label they vote for (definitions §3).

Pure functions on arrays: `class_votes` -> `rank_classes` -> prediction and top-5;
`confidence` is the negative Shannon entropy (natural log) of the neighbour label histogram.

Two exact search backends behind `search`: FAISS flat indexes (faiss-gpu where installed,
else faiss-cpu), and `torch_search`, a chunked matmul + top-k (fp16 matmul on CUDA, fp32 on
CPU) that streams the database in chunks and never holds the whole query x database matrix;
its chunk sizes follow a memory budget.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

from .embeddings import check_store, iter_embeddings, read_embeddings, read_source_rows
from .index import build_index, faiss_device, on_device, prepare

log = logging.getLogger(__name__)


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
    """Negative entropy of p = h / k (natural log, 0 log 0 = 0); higher = more confident.

    The total and the terms are summed in ascending order of h, so that rows holding the
    same values in any order of classes get bit-identical confidences: a tie between two
    crops is then decided by the tie rule (mean neighbour distance, then id; definitions
    §4), never by the rounding of a sum taken in class order."""
    ordered = np.sort(hist, axis=1)
    p = ordered / ordered.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


BACKENDS = ("faiss", "torch")


def search(database: np.ndarray | faiss.Index, queries: np.ndarray, k: int,
           metric: str = "l2", device: str = "auto", backend: str = "faiss",
           memory_mb: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN: (distances (Q, k), ids (Q, k)), nearest first.

    Distances are squared L2, or 1 - cosine similarity for metric "cosine". backend "torch"
    needs the database as an array (or use `torch_search` on chunks)."""
    if backend == "torch":
        if not isinstance(database, np.ndarray):
            raise ValueError("the torch backend searches an array, not a FAISS index")
        return torch_search([(0, database)], len(database), queries, k, metric, device,
                            memory_mb)
    if backend != "faiss":
        raise ValueError(f"unknown k-NN backend {backend!r}; use one of {BACKENDS}")
    if isinstance(database, np.ndarray):
        database = build_index(database, metric)
    if k > database.ntotal:
        raise ValueError(f"k = {k} exceeds the {database.ntotal} public images")
    dist, ids = on_device(database, device).search(prepare(queries, metric), k)
    return (1 - dist if metric == "cosine" else dist), ids


def memory_budget_mb(device: torch.device, memory_mb: int | None = None) -> int:
    """The working memory a search may use: as configured, else a quarter of what is free."""
    if memory_mb:
        return int(memory_mb)
    if device.type == "cuda":
        import torch
        free, _ = torch.cuda.mem_get_info(device)
        return max(256, free // 4 // 2**20)
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        free = 4 * 2**30
    return max(256, free // 4 // 2**20)


def chunk_sizes(n_queries: int, dim: int, k: int, budget_mb: int,
                bytes_per_value: int = 4) -> tuple[int, int]:
    """(query rows, database rows) per block so that a distance block, its top-k and one
    database chunk fit in the budget."""
    budget = budget_mb * 2**20
    q = min(n_queries, 4096)
    rows = budget // (4 * q + bytes_per_value * dim)  # distance block q x rows + the chunk
    if rows < 2 * k:  # fewer query rows, so a block still spans a useful database chunk
        rows = 2 * k
        q = max(1, (budget - bytes_per_value * dim * rows) // (4 * rows))
    return int(q), int(rows)


def torch_search(database: Iterable[tuple[int, np.ndarray]], n_database: int,
                 queries: np.ndarray, k: int, metric: str = "l2", device: str = "auto",
                 memory_mb: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN by chunked matmul + top-k, streaming `database` as (offset, rows) chunks.

    A running top-k per query is merged with each chunk's top-k; the database is read once.
    Products are float32 on every device. Not fp16: a near neighbour's distance
    |q|^2 + |x|^2 - 2 q.x is a small difference of large terms, and an fp16 product keeps
    about 1 part in 2,000 of q.x (projector outputs with a large shared mean also overflow
    fp16's 65,504), which reorders neighbours; float32 costs a few seconds more per search
    at paper scale on a GPU, less than reading the store. Ties between equal distances may
    order differently from FAISS."""
    import torch  # here: a FAISS search needs no torch

    from ..core.models import pick_device
    if k > n_database:
        raise ValueError(f"k = {k} exceeds the {n_database} public images")
    dev = pick_device(device)
    q_all = torch.from_numpy(prepare(queries, metric)).to(dev).float()
    q_norm = (q_all ** 2).sum(1) if metric == "l2" else None
    n_q, dim = q_all.shape
    q_rows, d_rows = chunk_sizes(n_q, dim, k, memory_budget_mb(dev, memory_mb))
    best_d = torch.full((n_q, k), float("inf"), device=dev)
    best_i = torch.full((n_q, k), -1, dtype=torch.int64, device=dev)
    for offset, block in database:
        for start in range(0, len(block), d_rows):
            x = torch.from_numpy(prepare(block[start:start + d_rows], metric)).to(dev).float()
            x_norm = (x ** 2).sum(1)
            first = offset + start
            for q0 in range(0, n_q, q_rows):
                q = slice(q0, q0 + q_rows)
                # ||q||^2 is the same for a whole row, so it joins only the final top-k
                if metric == "cosine":
                    d = -(q_all[q] @ x.T)
                else:
                    d = torch.addmm(x_norm[None], q_all[q], x.T, alpha=-2)
                kk = min(k, d.shape[1])
                cand_d, cand_i = torch.topk(d, kk, dim=1, largest=False)
                merged_d = torch.cat([best_d[q], cand_d], 1)
                merged_i = torch.cat([best_i[q], cand_i + first], 1)
                top_d, pos = torch.topk(merged_d, k, dim=1, largest=False)
                best_d[q], best_i[q] = top_d, torch.gather(merged_i, 1, pos)
    if metric == "l2":
        best_d = (best_d + q_norm[:, None]).clamp_min_(0)
    order = torch.argsort(best_i, dim=1)  # equal distances: smaller id first
    best_d, best_i = torch.gather(best_d, 1, order), torch.gather(best_i, 1, order)
    order = torch.argsort(best_d, dim=1, stable=True)
    best_d, best_i = torch.gather(best_d, 1, order), torch.gather(best_i, 1, order)
    dist = best_d.cpu().numpy()
    return (1 + dist if metric == "cosine" else dist), best_i.cpu().numpy()


def label_crops(dist: np.ndarray, ids: np.ndarray, public_labels: np.ndarray,
                n_classes: int) -> dict[str, np.ndarray]:
    """Votes, prediction, top-5 and confidence from the neighbours of each crop."""
    hist, dist_sum = class_votes(public_labels[ids], dist, n_classes)
    order = rank_classes(hist, dist_sum)
    return {"hist": hist, "prediction": order[:, 0], "top5": order[:, :5],
            "confidence": confidence(hist), "mean_distance": dist.mean(axis=1)}


def run(index_path: str | None, public_path: str, crops_store: str, crops_table: str,
        split_path: str, out_path: str, *, embedding: str, k: int, metric: str = "l2",
        device: str = "auto", threads: int = 1, backend: str = "faiss",
        memory_mb: int | None = None, checkpoint: str | None = None) -> None:
    if checkpoint:  # both stores must come from the model this job is for
        check_store(public_path, checkpoint, "public")
        check_store(crops_store, checkpoint)
    split = pd.read_parquet(split_path)
    n_classes = int(split["label"].max()) + 1
    label_of_row = split.drop_duplicates("row").set_index("row")["label"]
    public_rows = read_source_rows(public_path)
    queries, crop_rows = read_embeddings(crops_store, embedding)
    if backend == "torch":  # the public set streamed shard by shard from its store
        import torch

        from ..core.models import pick_device
        torch.set_num_threads(threads)
        used = pick_device(device).type
        dist, ids = torch_search(iter_embeddings(public_path, embedding), len(public_rows),
                                 queries, k, metric, device, memory_mb)
    else:
        import faiss
        faiss.omp_set_num_threads(threads)
        used = faiss_device(device)
        dist, ids = search(faiss.read_index(index_path), queries, k, metric, device)
    log.info("searched %d crops among %d public images with %s on %s", len(queries),
             len(public_rows), backend, used)
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
    out.attrs = {"knn_backend": backend, "knn_device": used}  # kept in the Parquet file
    out.to_parquet(out_path, index=False)
