"""The dataset store every stage reads: a Zarr uint8 image array plus a Parquet index.

`images.zarr` holds (N, S, S, 3) uint8; a row of the index (columns id, label, boxes,
height, width, and `row` when it is not simply the position) describes the image stored at
that row. An image fills the top-left `height` x `width` of its canvas; stages read only that
region (`read_square`). Boxes are lists of half-open pixel boxes [x0, y0, x1, y1] in the
stored image. The synthetic benchmark writes this format directly; real datasets are
ingested into it (`dejavu.data.ingest`), which leaves the rows of unusable files empty and out
of the index.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import zarr

if TYPE_CHECKING:
    import torch

INDEX_COLUMNS = ("id", "label", "boxes", "height", "width")


def write_images(path: str | Path, images: np.ndarray, chunk_rows: int = 256) -> None:
    """Write (N, H, W, 3) uint8 images as one Zarr array, chunked along N."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    create_images(path, len(images), images.shape[1:3], chunk_rows)[:] = images


def create_images(path: str | Path, n: int, size: tuple[int, int],
                  chunk_rows: int = 256) -> zarr.Array:
    """An empty (n, H, W, 3) uint8 Zarr array chunked along N, to fill a block at a time
    (blocks that start on a chunk boundary: each chunk is written once)."""
    return zarr.create_array(store=str(path), shape=(n, *size, 3), dtype=np.uint8,
                             chunks=(min(chunk_rows, max(1, n)), *size, 3), overwrite=True)


def open_images(path: str | Path) -> zarr.Array:
    """Read-only handle on a stored image array; index it like a numpy array."""
    return zarr.open_array(str(path), mode="r")


def write_index(path: str | Path, index: pd.DataFrame) -> None:
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"dataset index lacks columns {missing}")
    index.reset_index(drop=True).to_parquet(path, index=False)


def read_index(path: str | Path, columns: list[str] | None = None,
               rows=None) -> pd.DataFrame:
    """The index, labelled by store row, with `boxes` as lists of [x0, y0, x1, y1] ints.
    `columns`: only these (those the index has); `rows`: only these store rows (in store
    order). A stage that needs a few columns of some images reads just those: at
    ImageNet's 1.28M rows the whole index as Python objects is gigabytes."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    names = pq.read_schema(path).names
    wanted = None if columns is None else [c for c in names if c in {*columns, "row"}]
    table = pq.read_table(path, columns=wanted)
    if rows is not None:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        table = (table.filter(pc.is_in(table["row"], pa.array(rows))) if "row" in names
                 else table.take(pa.array(rows)))
    index = table.to_pandas()
    if "row" in index.columns:
        index.index = pd.Index(index["row"].to_numpy(), name=None)
    elif rows is not None:
        index.index = pd.Index(rows, name=None)
    if "boxes" in index.columns:
        index["boxes"] = [[[int(v) for v in box] for box in boxes] for boxes in index["boxes"]]
    return index


def read_rows(images, rows) -> np.ndarray:
    """images[rows] for sorted rows. A dense run is read as one slice and picked from (Zarr
    slices are about 8x faster than an orthogonal selection of the same rows); scattered rows
    a chunk at a time, so that beyond the rows themselves one decompressed chunk is held,
    never every chunk they touch at once (an orthogonal selection's way: for 128 random rows
    of a store in 7 MB chunks, about 190 MB)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return images[0:0]
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo <= 2 * len(rows):
        block = images[lo:hi]
        return block if hi - lo == len(rows) else block[rows - lo]
    out = np.empty((len(rows), *images.shape[1:]), images.dtype)
    chunk = rows // images.chunks[0]
    starts = np.flatnonzero(np.diff(chunk, prepend=-1))
    for start, end in zip(starts, [*starts[1:], len(rows)]):
        first, last = int(rows[start]), int(rows[end - 1]) + 1
        out[start:end] = images[first:last][rows[start:end] - first]
    return out


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def map_large_blocks(threshold: int = 1 << 20) -> bool:
    """Keep every block of `threshold` bytes or more that the C allocator hands out mapped
    on its own and returned when freed (glibc; elsewhere nothing changes, and False).

    A job reading many chunks one after another -- the crops stage's scattered rows, each
    chunk's compressed bytes a different size -- otherwise grows by hundreds of MB with the
    chunks read: glibc raises its mapping threshold to each large block freed (up to 32 MB),
    so the next ones come from a heap whose free space those varied sizes fragment and which
    is rarely returned (bench/scale.py: the crops job read +184 MB at 4x the data, and 24
    blocks of 1,024 scattered rows grew a reader from 704 to 918 MB; flat at 687 MB with
    the threshold fixed at 1 MB)."""
    import ctypes
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


def resize_square(images: torch.Tensor, side: int) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, side, side): shorter side to `side` with antialiasing, then a
    centre crop, so aspect is kept (as the released code does)."""
    import torch.nn.functional as F  # here: the store's readers need no torch
    h, w = images.shape[-2:]
    scale = side / min(h, w)
    new_h, new_w = max(side, round(h * scale)), max(side, round(w * scale))
    out = F.interpolate(images.float(), size=(new_h, new_w), mode="bilinear",
                        antialias=True, align_corners=False)
    top, left = (new_h - side) // 2, (new_w - side) // 2
    return out[..., top:top + side, left:left + side]


def read_square(images, rows: np.ndarray, heights, widths, side: int, device=None):
    """(n, 3, side, side) float tensor in [0, 1] of stored images at sorted `rows`: each
    image's own region (height x width), shorter side resized to `side`, centre-cropped."""
    import torch
    block = torch.from_numpy(read_rows(images, rows))
    return square(block.to(device) if device is not None else block, heights, widths, side)


def square(block, heights, widths, side: int):
    """(n, H, W, 3) uint8 canvases (a tensor, on any device) -> (n, 3, side, side) floats in
    [0, 1]: each image's region, shorter side to `side` (antialiased), centre square."""
    import torch

    x = block.permute(0, 3, 1, 2)
    heights, widths = np.asarray(heights), np.asarray(widths)
    full = (heights == x.shape[-2]) & (widths == x.shape[-1])
    if full.all():
        x = x.float() / 255
        return x if x.shape[-1] == side and x.shape[-2] == side else \
            resize_square(x, side).clamp(0, 1)
    out = torch.empty((len(block), 3, side, side), device=x.device)
    for h, w in set(zip(heights.tolist(), widths.tolist())):  # one resize per stored size
        same = torch.from_numpy(np.flatnonzero((heights == h) & (widths == w))).to(x.device)
        out[same] = resize_square(x[same, :, :h, :w].float() / 255, side).clamp(0, 1)
    return out


def shard_range(job: int, jobs: int, n_rows: int, shard_rows: int) -> tuple[int, int]:
    """Rows [start, stop) of job `job` of `jobs`: whole shards, contiguous, covering all rows."""
    n_shards = math.ceil(n_rows / shard_rows)
    first, last = job * n_shards // jobs, (job + 1) * n_shards // jobs
    return min(first * shard_rows, n_rows), min(last * shard_rows, n_rows)


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_key(attrs: dict) -> str:
    """The name of the partial store made with these attributes (source and layout)."""
    return hashlib.sha256(json.dumps(attrs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_or_create(partial: str, attrs: dict, create):
    """The Zarr array or group `<partial>/<store_key(attrs)>`, made by `create(path)` if it
    is not there yet. Shard jobs race to make it, on file systems where locks may not work
    (Lustre without `flock`, NFS), so no lock is taken: each job builds the store in a
    folder of its own and renames it to that name (atomic on POSIX file systems; a rename
    onto a store already there fails, and the job opens that one). A store made for another
    source or layout has another name and is never touched here, so no job can move a store
    another job is writing: the finalizing job, which runs after all of them, takes the one
    its jobs wrote and removes the rest (`finish_partial`)."""
    path = os.path.join(partial, store_key(attrs))
    os.makedirs(partial, exist_ok=True)
    if not os.path.exists(path):
        mine = os.path.join(partial, f".new-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        create(mine)
        try:
            os.rename(mine, path)
        except OSError:  # another job's store got there first
            shutil.rmtree(mine, ignore_errors=True)
    return zarr.open(path, mode="r+")


def partial_store(partial: str, keys) -> str:
    """The store under `partial` that every shard job reported writing (their `keys`)."""
    keys = set(keys)
    if len(keys) != 1 or None in keys:
        raise RuntimeError(f"{partial}: the shard jobs report different stores "
                           f"{sorted(map(str, keys))}; rerun them")
    path = os.path.join(partial, keys.pop())
    if not os.path.exists(path):
        raise FileNotFoundError(f"no partial store at {path}; rerun the shard jobs")
    return path


def finish_partial(partial: str, store: str, out_path: str) -> None:
    """Move the finished `store` to `out_path`; remove what else is under `partial`."""
    os.replace(store, out_path)
    shutil.rmtree(partial, ignore_errors=True)
