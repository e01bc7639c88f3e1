"""Exact FAISS index over the public set's embeddings (definitions §3).

FAISS is imported where it is used: the torch k-NN backend, which shares `prepare`, runs
without it (FAISS comes with the `cpu` or `gpu` extra: README, docs/cluster.md)."""

from __future__ import annotations

import numpy as np

from .embeddings import check_store, read_embeddings

METRICS = ("l2", "cosine")


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as FAISS wants them: float32, C-contiguous; unit length for cosine."""
    if metric not in METRICS:
        raise ValueError(f"unknown k-NN metric {metric!r}; use one of {METRICS}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def build_index(x: np.ndarray, metric: str = "l2") -> faiss.Index:
    """Flat (exact) index: squared L2 on raw vectors, or inner product on unit vectors."""
    import faiss
    x = prepare(x, metric)
    index = faiss.IndexFlatL2(x.shape[1]) if metric == "l2" else faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index


def faiss_device(device: str = "auto") -> str:
    """Where FAISS searches: "cuda" when faiss-gpu sees a GPU (and the CPU was not asked
    for), else "cpu". Asking for "cuda" without one is an error, not a CPU run."""
    import faiss
    n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if device == "cpu" or n_gpus == 0:
        if device == "cuda":
            raise RuntimeError("k-NN device 'cuda' asked for, but faiss has no GPU here "
                               "(faiss-cpu is installed, or no GPU is visible): install "
                               "faiss-gpu, or set knn.backend: torch")
        return "cpu"
    return "cuda"


def on_device(index: faiss.Index, device: str = "auto") -> faiss.Index:
    """The index on the GPUs when `faiss_device` says so, else as is."""
    if faiss_device(device) == "cpu":
        return index
    import faiss
    return faiss.index_cpu_to_all_gpus(index)


def run(store_path: str, out_path: str, *, embedding: str, metric: str = "l2",
        threads: int = 1, checkpoint: str | None = None) -> None:
    import faiss
    faiss.omp_set_num_threads(threads)
    if checkpoint:  # the store must hold this model's embeddings of the public set
        check_store(store_path, checkpoint, "public")
    x, _ = read_embeddings(store_path, embedding)
    faiss.write_index(build_index(x, metric), out_path)
