"""Finished embedding stores: completeness check and finalize, provenance check, reading.

Kept free of torch (it takes longer to import than these jobs take to run), so the
finalize, index and score-side jobs start fast; the embed jobs that write the stores live
in `dejavu.attack.embed`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import zarr

from ..core.store import file_digest, finish_partial, open_or_create, partial_store

ARRAYS = ("backbone", "projector")  # in every store; `arrays` in its attributes: all it holds


def open_partial(partial: str, n_rows: int, dims: dict[str, int], shard_rows: int,
                 chunk_rows: int, dtype: str, attrs: dict) -> zarr.Group:
    """The partial store, reused if it was made for the same model and layout."""
    def create(path: str) -> zarr.Group:
        group = zarr.open_group(path, mode="w", attributes=attrs)
        for name, dim in dims.items():
            group.create_array(name, shape=(n_rows, dim), dtype=dtype,
                               chunks=(chunk_rows, dim), shards=(shard_rows, dim))
        group.create_array("source_row", shape=(n_rows,), dtype="int64",
                           chunks=(chunk_rows,), shards=(shard_rows,))
        return group

    return open_or_create(partial, attrs, create)


def missing_shards(group_path: str, n_rows: int, shard_rows: int,
                   arrays=ARRAYS) -> list[str]:
    """Shard files absent from the store (zarr 3 default keys `c/<i>/<j>`)."""
    n_shards = math.ceil(n_rows / shard_rows)
    missing = []
    for name in (*arrays, "source_row"):
        suffix = ("0",) if name != "source_row" else ()
        for s in range(n_shards):
            if not Path(group_path, name, "c", str(s), *suffix).exists():
                missing.append(f"{name}/c/{s}")
    return missing


def check_store(store_path: str, checkpoint: str, part: str | None = None) -> dict:
    """The store's attributes, if it was written from `checkpoint` (and for `part`); else
    raise: a store left by another model or epoch is never silently reused."""
    attrs = dict(zarr.open_group(store_path, mode="r").attrs)
    want = file_digest(checkpoint)
    if attrs.get("checkpoint_sha256") != want or (part and attrs.get("part") != part):
        raise ValueError(
            f"{store_path} holds embeddings of part {attrs.get('part')!r} from checkpoint "
            f"sha256 {str(attrs.get('checkpoint_sha256'))[:12]} (epoch {attrs.get('epoch')}), "
            f"but this job expects part {part!r} from {checkpoint} (sha256 {want[:12]}); "
            f"delete the store and rerun")
    return attrs


def finalize(markers: list[str], out_path: str, checkpoint: str | None = None) -> None:
    """Check the store the shard jobs wrote under `<out_path>.partial` is complete (and
    written from `checkpoint`), then move it to `out_path`."""
    partial = out_path + ".partial"
    reports = sorted((json.loads(Path(m).read_text()) for m in markers), key=lambda r: r["job"])
    store = partial_store(partial, (r.get("store") for r in reports))
    attrs = check_store(store, checkpoint) if checkpoint else \
        dict(zarr.open_group(store, mode="r").attrs)
    if [r["job"] for r in reports] != list(range(attrs["jobs"])):
        raise RuntimeError(f"{store}: expected reports of jobs 0..{attrs['jobs'] - 1}, "
                           f"got {[r['job'] for r in reports]}")
    stale = [r["job"] for r in reports if r["checkpoint_sha256"] != attrs["checkpoint_sha256"]]
    covered = sum(r["stop"] - r["start"] for r in reports)
    missing = missing_shards(store, attrs["n_rows"], attrs["shard_rows"],
                             attrs.get("arrays", ARRAYS))
    if stale or covered != attrs["n_rows"] or missing:
        raise RuntimeError(f"{store} is incomplete: stale jobs {stale}, rows covered "
                           f"{covered}/{attrs['n_rows']}, missing shards {missing[:10]}")
    finish_partial(partial, store, out_path)


def read_source_rows(store_path: str) -> np.ndarray:
    """(N,) dataset or crop rows of a finalized store, without reading its embeddings."""
    return np.asarray(zarr.open_group(store_path, mode="r")["source_row"][:])


def iter_embeddings(store_path: str, which: str):
    """(offset, float32 block) per shard of a finalized store: the database streamed."""
    group = zarr.open_group(store_path, mode="r")
    array, step = held(group, store_path, which), int(group.attrs["shard_rows"])
    for start in range(0, array.shape[0], step):
        yield start, np.asarray(array[start:start + step], dtype=np.float32)


def read_embeddings(store_path: str, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (N, D) float32, source rows (N,)) from a finalized store."""
    group = zarr.open_group(store_path, mode="r")
    return (np.asarray(held(group, store_path, which)[:], dtype=np.float32),
            np.asarray(group["source_row"][:]))


def held(group: zarr.Group, store_path: str, which: str) -> zarr.Array:
    """The store's array of embedding `which`, or an error saying which it holds."""
    arrays = group.attrs.get("arrays", list(ARRAYS))
    if which not in arrays:
        raise KeyError(f"{store_path} holds the embeddings {arrays}, not {which!r}; it was "
                       f"made for other knn.embeddings (delete it to remake it)")
    return group[which]
