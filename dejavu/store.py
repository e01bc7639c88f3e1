"""The dataset store every stage reads: a Zarr uint8 image array plus a Parquet index.

`images.zarr` holds (N, H, W, 3) uint8; row `i` of the index (columns id, label, boxes, ...)
describes image `i`. Boxes are lists of half-open pixel boxes [x0, y0, x1, y1] in the stored
image. The synthetic benchmark writes this format directly; dataset adapters ingest into it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import zarr

INDEX_COLUMNS = ("id", "label", "boxes", "height", "width")


def write_images(path: str | Path, images: np.ndarray, chunk_rows: int = 256) -> None:
    """Write (N, H, W, 3) uint8 images as one Zarr array, chunked along N."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    arr = zarr.create_array(store=str(path), shape=images.shape, dtype=np.uint8,
                            chunks=(min(chunk_rows, max(1, len(images))),) + images.shape[1:],
                            overwrite=True)
    arr[:] = images


def open_images(path: str | Path) -> zarr.Array:
    """Read-only handle on a stored image array; index it like a numpy array."""
    return zarr.open_array(str(path), mode="r")


def write_index(path: str | Path, index: pd.DataFrame) -> None:
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"dataset index lacks columns {missing}")
    index.reset_index(drop=True).to_parquet(path, index=False)


def read_index(path: str | Path) -> pd.DataFrame:
    """The index with `boxes` as a list of [x0, y0, x1, y1] int lists per row."""
    index = pd.read_parquet(path)
    index["boxes"] = [[[int(v) for v in box] for box in boxes] for boxes in index["boxes"]]
    return index
