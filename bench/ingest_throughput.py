"""Ingest throughput: images/s of the ingest stage beside a single-process PIL loop.

Writes a tree of ImageNet-sized JPEGs (500x375, quality 90, 3 in 4 with a VOC box), then
times, in this one process:
  - `pil decode`: a plain loop that opens, decodes and converts each file to RGB,
  - `pil decode+resize`: the same plus the resize to the stored size,
  - `dejavu ingest` with 1 worker and with `--workers` (default: all cores) worker
    processes: scan + shard job + finalize, from files to a finished Zarr store and index.
The ratio of the parallel ingest to the single-process loop should approach the core count.

    python bench/ingest_throughput.py [--images 2000] [--size 256] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
from PIL import Image

from dejavu.data import ingest, sources
from dejavu.data.testing import write_imagenet_tree

IMAGENET_TRAIN_IMAGES = 1_281_167


def pil_loop(paths: list[str], size: int | None) -> float:
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size:
                s = size / max(img.size)
                img.resize((round(img.width * s), round(img.height * s)),
                           Image.Resampling.BILINEAR)
    return len(paths) / (time.perf_counter() - start)


def ingest_rate(tree: dict, out: Path, size: int, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    manifest, _, rejects = sources.scan({"name": "imagenet", "root": str(tree["train"]),
                                         "annotations": str(tree["annotations"]),
                                         "class_list": str(tree["class_list"])})
    manifest.to_parquet(out / "manifest.parquet", index=False)
    rejects.to_parquet(out / "scan.parquet", index=False)
    ingest.run_shard(str(out / "manifest.parquet"), str(out / "images.zarr"),
                     str(out / "0.parquet"), job=0, jobs=1, image_size=size, workers=workers,
                     shard_rows=256, chunk_rows=16)
    ingest.finalize(str(out / "manifest.parquet"), str(out / "scan.parquet"),
                    [str(out / "0.parquet")], str(out / "images.zarr"),
                    str(out / "index.parquet"), str(out / "rejects.parquet"))
    n = len(pd.read_parquet(out / "index.parquet"))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256, help="stored side (dataset.image_size)")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--node-cores", type=int, default=32,
                        help="cores per node for the projection")
    args = parser.parse_args()
    classes = 10
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_imagenet_tree(Path(tmp) / "tree", classes=classes,
                                   per_class=args.images // classes, size=(500, 375))
        paths = sorted(str(p) for p in tree["train"].rglob("*.JPEG"))
        pil_loop(paths[:50], None)  # warm the page cache
        decode = pil_loop(paths, None)
        decode_resize = pil_loop(paths, args.size)
        one = ingest_rate(tree, Path(tmp) / "one", args.size, 1)
        many = ingest_rate(tree, Path(tmp) / "many", args.size, args.workers)
    print(f"{len(paths)} JPEGs of 500x375 -> {args.size} px canvas, {os.cpu_count()} cores")
    print(f"{'':34}{'images/s':>10}{'vs decode':>11}{'vs decode+resize':>18}")
    for name, rate in (("pil decode (1 process)", decode),
                       ("pil decode+resize (1 process)", decode_resize),
                       ("dejavu ingest, 1 worker", one),
                       (f"dejavu ingest, {args.workers} workers", many)):
        print(f"{name:34}{rate:10.0f}{rate / decode:11.2f}{rate / decode_resize:18.2f}")
    per_core = many / args.workers
    hours = IMAGENET_TRAIN_IMAGES / (per_core * args.node_cores) / 3600
    print(f"projection: {IMAGENET_TRAIN_IMAGES:,} ImageNet train images on one "
          f"{args.node_cores}-core node at {per_core:.0f} images/s per core: {hours:.2f} h "
          f"(ingest.jobs spreads it over nodes)")


if __name__ == "__main__":
    main()
