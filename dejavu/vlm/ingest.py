"""Real captioned data into a records store (definitions §14; `data.write_store`'s layout):
the records of a COCO-format pair or a JSON-lines file (`records`), each image decoded
onto an S x S canvas by the image ingest's decoder (`data.ingest.load_image`: EXIF
orientation, colour modes, the `resize` policy), a block of `chunk_rows` at a time.

An image that cannot be decoded drops its record (recorded with its reason, as a missing
image or an empty caption is); the store's rows are the kept records in input order.
Memory follows `chunk_rows` x S x S x 3 bytes plus a chunk of records and, for a JSON-lines
file, up to 80 bytes a line (`records.jsonl_chunks`; COCO's annotation files are parsed
whole); the store is written
under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.store import create_images
from ..data.ingest import IngestConfig, Unusable, load_image
from ..data.sources import Rejects
from . import records as adapters

log = logging.getLogger(__name__)
SOURCES = ("synthetic", "coco", "jsonl")


def read_source(source: str, coco: dict, jsonl: str | None, rejects: Rejects,
                chunk_rows: int) -> tuple[list[str], int, Iterator[pd.DataFrame]]:
    """The configured source's vocabulary, an upper bound on its records, and its records
    with their image paths, `chunk_rows` at a time: a JSON-lines file streamed (two passes,
    `records.jsonl_chunks`), COCO's annotation files parsed whole (they are JSON)."""
    if source == "jsonl":
        return adapters.jsonl_chunks(jsonl, rejects, chunk_rows)
    if source != "coco":
        raise ValueError(f"vlm.data.source: {source!r} is not read from files; use one of "
                         f"{SOURCES[1:]}")
    table, vocabulary = adapters.read_coco(coco["captions"], coco["instances"], coco["images"],
                                           rejects)
    return vocabulary, len(table), (table.iloc[i:i + chunk_rows]
                                    for i in range(0, len(table), chunk_rows))


def decode(table: pd.DataFrame, images, start: int, cfg: IngestConfig, rejects: Rejects,
           block: np.ndarray) -> list[int]:
    """Decode the records' images (at most len(block)) into `images` from row `start`, the
    kept ones only, in one write; returns the positions in `table` of the kept records."""
    kept = []
    for position, (image_id, path) in enumerate(zip(table["id"], table["path"])):
        block[len(kept)] = 0
        try:
            _, _, notes = load_image(path, [], (0, 0), cfg, block[len(kept)])
        except Unusable as err:
            rejects.add(path, err.kind, adapters.SKIPPED, err.reason, image_id)
            continue
        for kind, reason in notes:  # a colour mode or orientation changed: kept
            rejects.add(path, kind, "converted", reason, image_id)
        kept.append(position)
    images[start:start + len(kept)] = block[:len(kept)]
    return kept


def run(out: str, *, source: str, coco: dict, jsonl: str | None, image_size: int,
        resize: str = "center", strict: bool = False, chunk_rows: int = 256) -> None:
    """The vlm_data stage for files on disk (the synthetic benchmark: `data.run_synthetic`):
    each chunk of records decoded, its images and records written before the next is read."""
    from .data import RecordsWriter, write_store
    rejects = Rejects("vlm_data", strict, key="vlm.data.strict")
    vocabulary, bound, chunks = read_source(source, coco, jsonl, rejects, chunk_rows)
    partial = Path(f"{out}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    images = create_images(partial / "images.zarr", max(bound, 1), (image_size, image_size),
                           chunk_rows)
    cfg = IngestConfig(image_size=image_size, resize=resize, strict=strict)
    block = np.zeros((chunk_rows, image_size, image_size, 3), np.uint8)
    with RecordsWriter(partial / "records.parquet") as records:
        for table in chunks:
            kept = decode(table, images, records.rows, cfg, rejects, block)
            records.write(table.iloc[kept])
    if records.rows == 0:
        raise ValueError(f"vlm.data: the {source} source holds no usable record "
                         f"({len(rejects.rows)} rejected)")
    images.resize((records.rows, image_size, image_size, 3))
    log.info("%d records stored, %d inputs rejected or changed", records.rows,
             len(rejects.rows))
    write_store(str(partial), None, None, vocabulary, rejects.table())
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
