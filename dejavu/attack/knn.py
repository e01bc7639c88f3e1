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


def class_votes(neighbor_labels: np.ndarray,
                distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(Q, k) labels and distances -> the classes each crop's neighbours vote for, as arrays
    over the distinct (crop, class) pairs: crop, class, votes and summed distance (float64,
    added in neighbour order), ordered by crop then class. At most k pairs per crop, however
    many classes there are: nothing here is Q x classes."""
    n_queries, k = neighbor_labels.shape
    classes = int(neighbor_labels.max()) + 1 if neighbor_labels.size else 1
    key = (np.repeat(np.arange(n_queries, dtype=np.int64), k) * classes
           + neighbor_labels.ravel().astype(np.int64))
    pairs, inverse = np.unique(key, return_inverse=True)
    votes = np.bincount(inverse, minlength=len(pairs))
    summed = np.bincount(inverse, weights=distances.ravel().astype(np.float64),
                         minlength=len(pairs))
    return pairs // classes, pairs % classes, votes, summed


def rank_classes(crop: np.ndarray, cls: np.ndarray, votes: np.ndarray,
                 summed: np.ndarray) -> np.ndarray:
    """Order of `class_votes`' pairs: by crop, then more votes, then smaller summed
    distance, then smaller class id. Classes without a vote rank after these, by id."""
    return np.lexsort((cls, summed, -votes, crop))


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


VOTE_BLOCK = 65_536  # crops voted at once: memory ~ VOTE_BLOCK x k, whatever the classes


def label_crops(dist: np.ndarray, ids: np.ndarray, public_labels: np.ndarray,
                n_classes: int) -> dict[str, np.ndarray]:
    """Votes, prediction, top-5 and confidence from the neighbours of each crop, a block of
    crops at a time. `voted`/`votes`: each crop's voted classes, best first, and their
    counts (lists of at most k: the histogram without its zeros)."""
    blocks = [_label_block(dist[lo:lo + VOTE_BLOCK], public_labels[ids[lo:lo + VOTE_BLOCK]],
                           n_classes) for lo in range(0, max(len(ids), 1), VOTE_BLOCK)]
    # each block's offsets into its own pairs, shifted by the pairs of the blocks before
    start = np.cumsum([0] + [len(block["voted"]) for block in blocks])
    out = {}
    for key in ("prediction", "top5", "confidence", "mean_distance", "voted", "votes"):
        out[key] = np.concatenate([block[key] for block in blocks])
        for block in blocks:  # one key's blocks and its whole at a time, not all of them
            del block[key]
    out["offsets"] = np.concatenate([block["offsets"][:-1] + first
                                     for block, first in zip(blocks, start)] + [start[-1:]])
    return out


def _label_block(dist: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    n, k = labels.shape
    crop, cls, votes, summed = class_votes(labels, dist)
    order = rank_classes(crop, cls, votes, summed)
    crop, cls, votes = crop[order], cls[order], votes[order]
    offsets = np.searchsorted(crop, np.arange(n + 1))  # each crop's first pair (k >= 1)
    rank = np.arange(len(crop)) - offsets[crop]
    voted_count = np.diff(offsets)
    # top-5: the voted classes in rank order, then the smallest classes without a vote
    # (at most width - m of them are needed, and they lie below width)
    width = min(5, n_classes)
    top = np.zeros((n, width), np.int64)
    kept = rank < width
    top[crop[kept], rank[kept]] = cls[kept]
    small_voted = np.zeros((n, width), bool)
    low = cls < width
    small_voted[crop[low], cls[low]] = True
    unvoted = np.argsort(small_voted, axis=1, kind="stable")
    slot = np.arange(width)[None]
    fill = slot >= voted_count[:, None]
    source = np.clip(slot - voted_count[:, None], 0, width - 1)
    top = np.where(fill, np.take_along_axis(unvoted, source, 1), top)
    # the counts as a histogram row without most of its zeros: min(k, classes) wide, counts
    # ascending from the right (as wide as the whole histogram where classes <= k)
    wide = min(k, n_classes)
    counts = np.zeros((n, wide), np.int64)
    counts[crop, wide - 1 - rank] = votes
    # the pairs as int32 (classes and counts are far below 2^31): k of them per crop at most
    return {"prediction": cls[offsets[:-1]], "top5": top, "confidence": confidence(counts),
            "mean_distance": dist.mean(axis=1), "voted": cls.astype(np.int32),
            "votes": votes.astype(np.int32), "offsets": offsets}


def run(index_path: str | None, public_path: str, crops_store: str, crops_table: str,
        split_path: str, out_path: str, *, embedding: str, k: int, metric: str = "l2",
        device: str = "auto", threads: int = 1, backend: str = "faiss",
        memory_mb: int | None = None, checkpoint: str | None = None) -> None:
    if checkpoint:  # both stores must come from the model this job is for
        check_store(public_path, checkpoint, "public")
        check_store(crops_store, checkpoint)
    split = pd.read_parquet(split_path, columns=["row", "label"])
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
    voted = label_crops(dist, ids, label_of_row.loc[public_rows].to_numpy(), n_classes)
    neighbors = public_rows[ids]  # dataset rows of the neighbours
    del ids  # the search's ids are its largest array: gone before the table is built
    table = pd.read_parquet(crops_table).set_index("crop_row").loc[crop_rows].reset_index()
    out = table[["crop_row", "row", "id", "label", "set"]].copy()
    label = out["label"].to_numpy()
    out["prediction"] = voted["prediction"]
    out["confidence"] = voted["confidence"]
    out["mean_distance"] = voted["mean_distance"]
    out["correct"] = out["prediction"] == out["label"]
    out["correct_top5"] = (voted["top5"] == label[:, None]).any(axis=1)
    out.attrs = {"knn_backend": backend, "knn_device": used}  # kept in the Parquet file
    write_table(out, out_path, neighbors=neighbors, distances=dist.astype(np.float32, copy=False),
                top5=voted["top5"], voted=(voted["voted"], voted["offsets"]),
                votes=(voted["votes"], voted["offsets"]))


# What the score reads of a k-NN table (the one-model test also its labels): the lists of
# neighbours, distances and votes stay on disk
SCORED_COLUMNS = ["id", "set", "correct", "correct_top5", "confidence", "mean_distance"]


def read_scored(path: str, *more: str) -> pd.DataFrame:
    """The scored columns of a k-NN table (and `more`); top-5 where the table has it."""
    import pyarrow.parquet as pq
    names = set(pq.read_schema(path).names)
    return pd.read_parquet(path, columns=[c for c in [*SCORED_COLUMNS, *more] if c in names])


ROW_GROUP = 65_536  # rows per Parquet row group: the writer encodes one at a time


def write_table(frame: pd.DataFrame, path: str, **lists) -> None:
    """`frame`'s columns and list columns, written with Arrow from whole arrays: a (rows, w)
    array is a list of w per row, (values, offsets) a list of offsets[i + 1] - offsets[i]
    values (no Python object per row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name, values in lists.items():
        if isinstance(values, tuple):
            values, offsets = values
            column = pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64)),
                                                   pa.array(values))
        else:
            column = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()),
                                                       values.shape[1])
        table = table.append_column(name, column)
    pq.write_table(table, path, row_group_size=ROW_GROUP)
