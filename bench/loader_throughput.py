"""The training loader's data path: images/s that streamed batches come off the store, with
1 and 2 worker threads, in one process, two ways: decompressing only (the stored 256 px
canvases, what a worker does when the device resizes: `training.loader` on any device whose
set is stored at another size) and decompressing, taking each image's region, shorter side
to 224 px and centre square on the CPU (`SetImages.read`, what the workers did before).
Projects how many CPU cores keep a GPU fed.

    python bench/loader_throughput.py [--images 1024] [--batch 128]

The store is written as ingest writes ImageNet (`dataset.ingest.chunk_rows: 16`) from smooth
random canvases (they compress about as well as photographs); batches are drawn in a random
order, as an epoch draws them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dejavu.core.store import write_images
from dejavu.data.split import SetImages

CANVAS, SIDE = 256, 224


def canvases(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random images: 16 px noise upsampled to the canvas."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.integers(0, 256, (n, 3, 16, 16)).astype(np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(CANVAS, CANVAS), mode="bilinear")
    return fine.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def rate(read, workers: int, batch: int, order: torch.Tensor) -> float:
    """Images/s of `read` over the batches of `order`, on `workers` threads."""
    parts = [part.numpy() for part in order.split(batch)]
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        seen = sum(len(out[0] if isinstance(out, tuple) else out)
                   for out in pool.map(read, parts))
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the step's threads are the model's; workers are threads too
    with tempfile.TemporaryDirectory() as tmp:
        write_images(Path(tmp) / "images.zarr", canvases(args.images), chunk_rows=16)
        pd.DataFrame({"id": [f"i{i}" for i in range(args.images)], "row": range(args.images),
                      "set": "A", "label": 0, "height": CANVAS, "width": CANVAS}
                     ).to_parquet(Path(tmp) / "split.parquet")
        images = SetImages(str(Path(tmp) / "images.zarr"), str(Path(tmp) / "split.parquet"),
                           "A", SIDE)
        order = torch.randperm(args.images, generator=torch.Generator().manual_seed(0))
        rates = {}
        for name, read in (("decompress only", images.read_stored),
                           ("decompress + resize on the CPU", images.read)):
            rate(read, 1, args.batch, order[:args.batch])  # warm-up
            rates[name] = [rate(read, w, args.batch, order) for w in (1, 2)]
    print(f"{args.images} canvases of {CANVAS} px -> {SIDE} px, batches of {args.batch}:")
    for name, (one, two) in rates.items():
        print(f"  {name:32s} 1 worker {one:6.0f} images/s, 2 workers {two:6.0f} images/s "
              f"(x{two / one:.2f}); cores to feed 9,000 images/s (a ResNet-101 bf16 "
              f"forward on an H100): about {9000 / one:.0f}")


if __name__ == "__main__":
    main()
