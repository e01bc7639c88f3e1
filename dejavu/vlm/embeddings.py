"""A VLM's embeddings of every record (the vlm_embed stage's output): a Zarr group of
`image` and `text`, each (N, D) float32 in the records store's row order, in chunks of
`chunk_rows` rows. Written a whole chunk at a time (rows are buffered until a chunk fills,
so no chunk is rewritten) and read back as scattered rows (a block of queries) or as the
public records' rows a chunk at a time (the search's database, streamed): memory follows
`chunk_rows`, never N. Torch-free.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import zarr

from ..core.store import read_rows

KINDS = ("image", "text")


class Writer:
    """Rows appended in order, written `chunk_rows` at a time (one Zarr chunk each, so no
    chunk is written twice); `close` writes the rest and renames the store to its path."""

    def __init__(self, path: str, n_rows: int, dims: dict[str, int], chunk_rows: int):
        self.path, self.partial = Path(path), Path(f"{path}.partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        group = zarr.open_group(str(self.partial), mode="w",
                                attributes={"chunk_rows": chunk_rows})
        self.arrays = {name: group.create_array(
            name, shape=(n_rows, dim), dtype="float32", chunks=(chunk_rows, dim))
            for name, dim in dims.items()}
        self.chunk_rows, self.written, self.buffered = chunk_rows, 0, 0
        self.pending: dict[str, list[np.ndarray]] = {name: [] for name in dims}

    def add(self, **blocks: np.ndarray) -> None:
        """The next rows of every array (blocks of equal length)."""
        for name, block in blocks.items():
            self.pending[name].append(np.asarray(block, np.float32))
        self.buffered += len(next(iter(blocks.values())))
        while self.buffered >= self.chunk_rows:
            self._write(self.chunk_rows)

    def _write(self, rows: int) -> None:
        for name, parts in self.pending.items():
            block = np.concatenate(parts)
            self.arrays[name][self.written:self.written + rows] = block[:rows]
            self.pending[name] = [block[rows:]]
        self.written, self.buffered = self.written + rows, self.buffered - rows

    def close(self) -> None:
        if self.buffered:
            self._write(self.buffered)
        expected = next(iter(self.arrays.values())).shape[0]
        if self.written != expected:
            raise ValueError(f"{self.path}: {self.written} rows written of {expected}")
        shutil.rmtree(self.path, ignore_errors=True)
        self.partial.rename(self.path)


def write_blocks(path: str, n_rows: int, blocks, chunk_rows: int) -> None:
    """A store of `n_rows` rows from `blocks`: dicts of equal-length (rows, width) arrays in
    row order, the arrays and their widths those of the first (each embed stage's loop)."""
    writer = None
    for block in blocks:
        if writer is None:
            writer = Writer(path, n_rows, {k: v.shape[1] for k, v in block.items()},
                            chunk_rows)
        writer.add(**block)
    if writer is None:
        raise ValueError(f"{path}: no rows to write")
    writer.close()


def open_store(path: str) -> zarr.Group:
    return zarr.open_group(str(path), mode="r")


def rows_of(group: zarr.Group, kind: str, rows: np.ndarray) -> np.ndarray:
    """(len(rows), D) float32 embeddings of the records at sorted store `rows`."""
    return np.asarray(read_rows(group[kind], np.asarray(rows)), np.float32)


def blocks_of(group: zarr.Group, kind: str, rows: np.ndarray):
    """(offset, block) per chunk: the embeddings of the records at sorted store `rows`,
    block by block, `offset` counting positions in `rows` (the search's database ids)."""
    array, step = group[kind], int(group.attrs["chunk_rows"])
    rows = np.asarray(rows)
    for start in range(0, array.shape[0], step):
        lo, hi = np.searchsorted(rows, [start, start + step])
        if hi > lo:
            block = np.asarray(array[start:start + step], np.float32)
            yield int(lo), block[rows[lo:hi] - start]
