"""Real captioned data into a records store (definitions §14; `data.write_store`'s layout):
the records of a COCO-format pair or a JSON-lines file (`records`), each image decoded
onto an S x S canvas by the image ingest's decoder (`data.ingest.load_image`: EXIF
orientation, colour modes, the `resize` policy), a block of `chunk_rows` at a time.

An image that cannot be decoded drops its record (recorded with its reason, as a missing
image or an empty caption is); the store's rows are the kept records in input order.
Memory follows `chunk_rows` x S x S x 3 bytes plus the records table, whatever the number
of images; the store is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.store import create_images
from ..data.ingest import IngestConfig, Unusable, load_image
from ..data.sources import Rejects
from . import records as adapters

log = logging.getLogger(__name__)
SOURCES = ("synthetic", "coco", "jsonl")


def read_source(source: str, coco: dict, jsonl: str | None,
                rejects: Rejects) -> tuple[pd.DataFrame, list[str]]:
    """(records with their image paths, vocabulary) of the configured source."""
    if source == "coco":
        return adapters.read_coco(coco["captions"], coco["instances"], coco["images"], rejects)
    if source == "jsonl":
        return adapters.read_jsonl(jsonl, rejects)
    raise ValueError(f"vlm.data.source: {source!r} is not read from files; use one of "
                     f"{SOURCES[1:]}")


def decode(table: pd.DataFrame, images, cfg: IngestConfig, rejects: Rejects,
           chunk_rows: int) -> np.ndarray:
    """Decode every record's image into `images` (rows in order, kept ones only); returns
    the positions in `table` of the kept records."""
    kept, block = [], np.zeros((chunk_rows, cfg.image_size, cfg.image_size, 3), np.uint8)
    filled, written = 0, 0
    for position, (image_id, path) in enumerate(zip(table["id"], table["path"])):
        block[filled] = 0
        try:
            _, _, notes = load_image(path, [], (0, 0), cfg, block[filled])
        except Unusable as err:
            rejects.add(path, err.kind, adapters.SKIPPED, err.reason, image_id)
            continue
        for kind, reason in notes:  # a colour mode or orientation changed: kept
            rejects.add(path, kind, "converted", reason, image_id)
        kept.append(position)
        filled += 1
        if filled == chunk_rows:  # whole chunks: each written once
            images[written:written + filled] = block
            written, filled = written + filled, 0
    images[written:written + filled] = block[:filled]
    return np.asarray(kept, dtype=np.int64)


def run(out: str, *, source: str, coco: dict, jsonl: str | None, image_size: int,
        resize: str = "center", strict: bool = False, chunk_rows: int = 256) -> None:
    """The vlm_data stage for files on disk (the synthetic benchmark: `data.run_synthetic`)."""
    from .data import write_store
    rejects = Rejects("vlm_data", strict, key="vlm.data.strict")
    table, vocabulary = read_source(source, coco, jsonl, rejects)
    if table.empty:
        raise ValueError(f"vlm.data: the {source} source holds no usable record "
                         f"({len(rejects.rows)} rejected)")
    partial = Path(f"{out}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    images = create_images(partial / "images.zarr", len(table), (image_size, image_size),
                           chunk_rows)
    cfg = IngestConfig(image_size=image_size, resize=resize, strict=strict)
    kept = decode(table, images, cfg, rejects, chunk_rows)
    images.resize((len(kept), image_size, image_size, 3))
    log.info("%d records stored, %d inputs rejected or changed", len(kept), len(rejects.rows))
    write_store(str(partial), None, table.iloc[kept].reset_index(drop=True), vocabulary,
                rejects.table())
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
