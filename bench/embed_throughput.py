"""Embed throughput: images/s of the embed stage end to end beside the bare model forward.

Writes a store of random images, then times, in this one process:
  - `bare forward`: the model (eval, inference mode, channels-last; bf16 autocast on CUDA)
    on one in-memory batch tensor already on the device, repeated;
  - `embed stage`: `dejavu.attack.embed.run_shard` reading the store (batches read ahead on a
    thread, resized to the model side), running the model and writing float16 Zarr shards.
The ratio stage / bare is what the stage keeps of what the model can do (target >= 0.7).

    python bench/embed_throughput.py [--backbone convnet|resnet18|resnet50|...]
        [--side 32] [--stored 32] [--images 4096] [--batch 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dejavu.attack.embed import run_shard
from dejavu.attack.embeddings import finalize
from dejavu.core.models import load_checkpoint, memory_format, pick_device
from dejavu.core.store import write_images
from dejavu.training.train import run_init


def bare_forward(model, side: int, batch: int, n_images: int, device) -> float:
    model.to(device, memory_format=memory_format(device)).eval()
    x = torch.rand(batch, 3, side, side, device=device).contiguous(
        memory_format=memory_format(device))
    bf16 = device.type == "cuda"

    def step():
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16,
                                                     enabled=bf16):
            h, z = model(x)
            h.float().cpu(), z.float().cpu()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    n = max(1, n_images // batch)
    start = time.perf_counter()
    for _ in range(n):
        step()
    return n * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="convnet")
    parser.add_argument("--side", type=int, default=32, help="model input side")
    parser.add_argument("--stored", type=int, default=None, help="stored image side")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--projector", default="512,512,512")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    stored = args.stored or args.side
    projector = [int(v) for v in args.projector.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.images, stored, stored, 3), dtype=np.uint8)
        write_images(tmp / "images.zarr", images, chunk_rows=256)
        pd.DataFrame({"row": np.arange(args.images), "set": "public"}).to_parquet(
            tmp / "split.parquet")
        run_init(str(tmp / "model.pt"), backbone=args.backbone, projector_dims=projector,
                 width=16, seed=0, subset="A", small_stem=args.side <= 64,
                 image_size=args.side, patch_size=4 if args.side <= 64 else 16)
        model, _ = load_checkpoint(str(tmp / "model.pt"))
        bare = bare_forward(model, args.side, args.batch, args.images, device)
        # the stage, as one shard job over all rows (warm the page cache first)
        run_shard(str(tmp / "model.pt"), str(tmp / "images.zarr"), str(tmp / "split.parquet"),
                  str(tmp / "warm.zarr"), str(tmp / "warm.json"), part="public", job=0,
                  jobs=1, side=args.side, shard_rows=1024, chunk_rows=256,
                  batch_size=args.batch, dtype="float16", device=args.device,
                  threads=args.threads)
        start = time.perf_counter()
        run_shard(str(tmp / "model.pt"), str(tmp / "images.zarr"), str(tmp / "split.parquet"),
                  str(tmp / "out.zarr"), str(tmp / "m.json"), part="public", job=0, jobs=1,
                  side=args.side, shard_rows=1024, chunk_rows=256, batch_size=args.batch,
                  dtype="float16", device=args.device, threads=args.threads)
        finalize([str(tmp / "m.json")], str(tmp / "out.zarr"), str(tmp / "model.pt"))
        stage = args.images / (time.perf_counter() - start)
    print(f"{args.backbone} at {args.side} px (stored {stored} px), batch {args.batch}, "
          f"{args.images} images, {device.type}, {args.threads} threads")
    print(f"bare forward  {bare:9.0f} images/s")
    print(f"embed stage   {stage:9.0f} images/s   ratio {stage / bare:.2f}")


if __name__ == "__main__":
    main()
