"""Backbone and projector embeddings (and any intermediate layers asked for, definitions
§11), written by several shard jobs into one Zarr store.

A *part* is what gets embedded: `public` (full public images from the dataset store) or
`crops-<mode>` (the attacked images' crops); the linear probe embeds the training set and
the public test split through `embed_source` and `embed_batches` too, without a store. Rows
are grouped into Zarr shards of `shard_rows` rows; job j of J writes a contiguous run of
whole shards and nothing else.
Writing part of a shard from several processes is a read-modify-write race in zarr 3 that
silently loses rows, so no two jobs ever touch the same shard.

Jobs write into `<out>.partial`; `embeddings.finalize` checks that every shard of every array is on
disk and that every job reported, then renames the store to `<out>`, so a store at the
final path is always complete. A killed job is simply rerun: it rewrites its own shards.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core import layers
from ..core.models import load_checkpoint, memory_format, pick_device
from .embeddings import open_partial
from ..core.store import (file_digest, open_images, read_rows, shard_range, square,
                          store_key)

log = logging.getLogger(__name__)


def prefetched(items: Iterable, depth: int = 2):
    """Yield from `items`, producing up to `depth` ahead on a background thread (the next
    batch is read and decoded from the store while the model runs on this one)."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce():
        try:
            for item in items:
                buffer.put(item)
        except BaseException as err:  # handed to the consumer
            buffer.put(err)
        buffer.put(done)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while (item := buffer.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


def auto_batch_size(model, side: int, device: torch.device, start: int = 1024) -> int:
    """The largest power-of-two batch (<= start) the device runs: CPU 256; on CUDA the
    first that does not run out of memory, halving from `start`."""
    if device.type != "cuda":
        return 256
    batch = start
    while batch > 1:
        try:
            with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16):
                model(torch.zeros(batch, 3, side, side, device=device)
                      .contiguous(memory_format=memory_format(device)))
            torch.cuda.synchronize(device)
            return batch
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            batch //= 2
    return 1


def embed_batches(model, images, rows: np.ndarray, side: int, batch_size: int,
                  device: torch.device, sizes: tuple[np.ndarray, np.ndarray] | None = None,
                  names=layers.OUTPUTS):
    """Yield {embedding: float32 numpy block} for `images[rows]` in order: the backbone and
    projector outputs, and the intermediate layers among `names` (dejavu.core.layers).

    images: a stored image array; rows sorted. sizes: (heights, widths) of each row's image
    region when it is not the whole canvas (ingested with `fit`). Batches are read ahead on
    a background thread; the model runs in eval and inference mode, channels-last with
    bf16 autocast on CUDA (the default format and fp32 on CPU: `models.memory_format`)."""
    fmt = memory_format(device)
    model.to(device, memory_format=fmt).eval()
    use_bf16 = device.type == "cuda"
    canvas = images.shape[1:3]

    def read():  # on the read-ahead thread: uint8 blocks from the store (decompressed)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            yield start, torch.from_numpy(read_rows(images, chunk))

    for start, block in prefetched(read()):
        n = len(block)
        if sizes is None:
            heights, widths = np.full(n, canvas[0]), np.full(n, canvas[1])
        else:
            heights, widths = (s[start:start + n] for s in sizes)
        # uint8 goes to the device; region, resize and scaling happen there
        x = square(block.to(device, non_blocking=True), heights, widths, side)
        x = x.contiguous(memory_format=fmt)
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16,
                                                     enabled=use_bf16):
            out = model.embed(x, names)
        yield {name: e.float().cpu().numpy() for name, e in out.items()}


def layer_dims(model, names, side: int) -> dict[str, int]:
    """The width of each embedding in `names`, from one blank image."""
    model.eval()
    with torch.inference_mode():
        out = model.embed(torch.zeros(1, 3, side, side), names)
    return {name: out[name].shape[1] for name in names}


IMAGE_PARTS = ("public", "public_test", "train")


def embed_source(part: str, images_path: str, table_path: str, subset: str | None = None):
    """(images, sorted source rows, (heights, widths) or None) of a part: full images of a
    split set from the dataset store (`train`: the set `subset`), or crops (which fill
    their canvas)."""
    table = pd.read_parquet(table_path)
    if part in IMAGE_PARTS:
        name = subset if part == "train" else part
        if name is None:
            raise ValueError("part 'train' needs the model's subset (A or B)")
        chosen = table[table["set"] == name].sort_values("row")
        rows = chosen["row"].to_numpy()
        sizes = ((chosen["height"].to_numpy(), chosen["width"].to_numpy())
                 if "height" in chosen else None)
    elif part.startswith("crops-"):
        rows, sizes = np.sort(table.loc[table["valid"], "crop_row"].to_numpy()), None
    else:
        raise ValueError(f"unknown part {part!r}")
    return open_images(images_path), rows.astype(np.int64), sizes


def transform_description(side: int) -> str:
    return (f"image region -> shorter side {side} (bilinear, antialiased) -> centre "
            f"{side}x{side} -> [0, 1]")


def run_shard(checkpoint: str, images_path: str, table_path: str, out_path: str,
              marker_path: str, *, part: str, job: int, jobs: int, side: int,
              shard_rows: int, chunk_rows: int, batch_size: int | str = "auto",
              dtype: str = "float16", device: str = "auto", threads: int = 1,
              inner: list[str] = ()) -> None:
    """Embed job `job` of `jobs`: its whole shards, written one shard at a time, so memory
    holds one shard of embeddings whatever the part's size. `inner`: the intermediate
    layers the store holds beside the two outputs."""
    torch.set_num_threads(threads)
    if shard_rows % chunk_rows:
        raise ValueError(f"shard_rows ({shard_rows}) must be a multiple of chunk_rows "
                         f"({chunk_rows})")
    images, rows, sizes = embed_source(part, images_path, table_path)
    model, ckpt = load_checkpoint(checkpoint)
    arrays = [*layers.OUTPUTS, *layers.inner(inner)]
    dims = layer_dims(model, arrays, side)
    attrs = {"part": part, "checkpoint_sha256": file_digest(checkpoint),
             "epoch": int(ckpt.get("epoch", -1)), "arch": model.arch, "n_rows": len(rows),
             "jobs": jobs, "shard_rows": shard_rows, "side": side, "dtype": dtype,
             "transform": transform_description(side)}
    if len(arrays) > len(layers.OUTPUTS):  # stores of the two outputs keep their old key
        attrs["arrays"] = arrays
    group = open_partial(out_path + ".partial", len(rows), dims, shard_rows, chunk_rows,
                         dtype, attrs)
    dev = pick_device(device)
    if batch_size == "auto":
        batch_size = auto_batch_size(model.to(dev).eval(), side, dev)
    start, stop = shard_range(job, jobs, len(rows), shard_rows)
    sizes = None if sizes is None else tuple(s[start:stop] for s in sizes)
    batches = embed_batches(model, images, rows[start:stop], side, batch_size, dev, sizes,
                            arrays)
    shard = {name: np.empty((shard_rows, dim), np.float32) for name, dim in dims.items()}
    at, filled = start, 0  # first row of the shard being filled, rows filled so far
    for block in batches:
        used, rows_in = 0, len(block["backbone"])
        while used < rows_in:
            size = min(shard_rows, stop - at)
            n = min(rows_in - used, size - filled)
            for name in arrays:
                shard[name][filled:filled + n] = block[name][used:used + n]
            filled, used = filled + n, used + n
            if filled == size:  # one whole shard per array, then the buffer is reused
                for name in arrays:
                    group[name][at:at + size] = shard[name][:size]
                group["source_row"][at:at + size] = rows[at:at + size]
                log.info("%s job %d/%d: rows [%d, %d) of %d written (batch %d)", part, job,
                         jobs, at, at + size, len(rows), batch_size)
                at, filled = at + size, 0
    if at != stop:
        raise RuntimeError(f"{part} job {job}: wrote rows up to {at}, expected {stop}")
    Path(marker_path).write_text(json.dumps({"job": job, "start": start, "stop": stop,
                                             "checkpoint_sha256": attrs["checkpoint_sha256"],
                                             "store": store_key(attrs)}))
