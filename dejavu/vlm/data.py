"""The vision-language test's data stages (definitions §14): a captioned dataset into a
records store, the records' split into A, B, held-out and public sets, and what a CLIP
model is trained on and embeds.

A records store is a folder: `images.zarr` (uint8, one row per record, as the image
store), `records.parquet` (id, row, caption, objects, named), `vocabulary.csv` (the object
names by id) and `rejects.parquet` (every input skipped or changed, with its reason).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.store import open_images, read_rows, write_images
from ..data.sources import Rejects
from . import synth

SETS = ("A", "B", "heldout")  # records scored; the rest are public


def write_store(out: str, images: np.ndarray | None, records: pd.DataFrame | None,
                vocabulary: list[str], rejects: pd.DataFrame) -> None:
    """The store's files; `images` None when `images.zarr` was written a block at a time,
    `records` None when `records.parquet` was (`RecordsWriter`)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if images is not None:
        write_images(folder / "images.zarr", images)
    if records is not None:
        with RecordsWriter(folder / "records.parquet") as writer:
            writer.write(records)
    pd.DataFrame({"object": vocabulary}).to_csv(folder / "vocabulary.csv", index_label="id")
    rejects.to_parquet(folder / "rejects.parquet", index=False)


class RecordsWriter:
    """records.parquet written a chunk of records at a time, numbering their rows on."""

    COLUMNS = ["id", "row", "caption", "objects", "named"]

    def __init__(self, path: Path):
        import pyarrow as pa
        self.path, self.rows, self.writer = path, 0, None
        self.schema = pa.schema([("id", pa.string()), ("row", pa.int64()),
                                 ("caption", pa.string()), ("objects", pa.list_(pa.int64())),
                                 ("named", pa.list_(pa.int64()))])

    def write(self, records: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        part = records.assign(row=np.arange(self.rows, self.rows + len(records)))
        self.writer.write_table(pa.Table.from_pandas(part[self.COLUMNS], schema=self.schema,
                                                     preserve_index=False))
        self.rows += len(records)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is None:  # no record: an empty table, with its columns
            self.write(pd.DataFrame(columns=self.COLUMNS))
        self.writer.close()


def run_synthetic(out: str, *, records: int, image_size: int, n_scenes: int, n_objects: int,
                  seed: int) -> None:
    """The vlm_data stage for the built-in captioned benchmark."""
    cfg = synth.CaptionedConfig(records=records, image_size=image_size, n_scenes=n_scenes,
                                n_objects=n_objects, seed=seed)
    images, table = synth.generate(cfg)
    write_store(out, images, table.assign(id=table["id"].astype(str)),
                synth.OBJECT_NOUNS[:n_objects], Rejects("vlm_data").table())


def split(n_records: int, per_set: int, seed: int) -> pd.DataFrame:
    """Each record's set: `per_set` records in each of A, B and held-out, drawn at random
    (seeded), the rest public. Columns row, set."""
    if 3 * per_set >= n_records:
        raise ValueError(f"vlm.split.per_set: 3 x {per_set} records leave no public ones of "
                         f"{n_records}")
    order = np.random.default_rng(seed).permutation(n_records)
    sets = np.full(n_records, "public", dtype=object)
    for i, name in enumerate(SETS):
        sets[order[i * per_set:(i + 1) * per_set]] = name
    return pd.DataFrame({"row": np.arange(n_records), "set": sets})


def declared(records_path: str, sets_path: str) -> pd.DataFrame:
    """The split a user declares (`vlm.sets`): a CSV of record `id` and `set` (A, B or
    heldout; a model trained elsewhere is trained on A); records it does not list are
    public. An id that is not a record, or a set that is none of these, is an error naming
    it."""
    ids = pd.read_parquet(records_path, columns=["id", "row"])
    listed = pd.read_csv(sets_path, dtype={"id": str, "set": str})
    unknown = sorted(set(listed["set"]) - set(SETS))
    if unknown:
        raise ValueError(f"{sets_path}: sets {unknown} are none of {list(SETS)}")
    rows = listed.merge(ids, on="id", how="left")
    missing = rows.loc[rows["row"].isna(), "id"].tolist()
    if missing:
        raise ValueError(f"{sets_path}: {len(missing)} ids are not records of the store, "
                         f"e.g. {missing[:3]}")
    if rows["id"].duplicated().any():
        raise ValueError(f"{sets_path}: ids listed twice, e.g. "
                         f"{rows.loc[rows['id'].duplicated(), 'id'].tolist()[:3]}")
    sets = np.full(len(ids), "public", dtype=object)
    sets[rows["row"].astype(int).to_numpy()] = rows["set"].to_numpy()
    return pd.DataFrame({"row": ids["row"].to_numpy(), "set": sets})


def run_split(records_path: str, out: str, *, per_set: int, seed: int,
              sets: str | None = None) -> None:
    """The vlm_split stage: the declared sets (`sets`), else a seeded random split."""
    if sets:
        declared(records_path, sets).to_parquet(out, index=False)
        return
    n = len(pd.read_parquet(records_path, columns=["row"]))
    split(n, per_set, seed).to_parquet(out, index=False)


def set_rows(split_path: str, name: str) -> np.ndarray:
    table = pd.read_parquet(split_path)
    return np.sort(table.loc[table["set"] == name, "row"].to_numpy())


class Records:
    """A records store read once per stage, compactly: the captions as one Arrow string
    array, each record's objects and named objects as (n, V) bools (from the lists' offsets,
    never as Python objects), the images read a block of rows at a time. About caption
    bytes + 2V + 16 bytes a record (RECORD_BYTES in vlm/resources.py bounds it)."""

    def __init__(self, store: str):
        import pyarrow.parquet as pq
        folder = Path(store)
        table = pq.read_table(folder / "records.parquet",
                              columns=["row", "caption", "objects", "named"])
        if not np.array_equal(table["row"].to_numpy(), np.arange(table.num_rows)):
            raise ValueError(f"{store}: records.parquet's rows are not 0..n-1 in order")
        self.vocabulary = len(pd.read_csv(folder / "vocabulary.csv"))
        self._captions = table["caption"].combine_chunks()
        self._objects = self._multi_hot(table["objects"])
        self._named = self._multi_hot(table["named"])
        self.store = open_images(str(folder / "images.zarr"))

    def _multi_hot(self, column) -> np.ndarray:
        lists = column.combine_chunks()
        ids = lists.flatten().to_numpy().astype(np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocabulary):
            raise ValueError(f"object ids outside the vocabulary of {self.vocabulary}")
        counts = np.diff(lists.offsets.to_numpy())
        out = np.zeros((len(lists), self.vocabulary), bool)
        out[np.repeat(np.arange(len(lists)), counts), ids] = True
        return out

    @property
    def rows(self) -> np.ndarray:
        return np.arange(len(self._captions))

    def images(self, rows: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8 of the records at store `rows` (sorted)."""
        return read_rows(self.store, rows)

    def captions(self, rows: np.ndarray) -> list[str]:
        import pyarrow as pa
        return self._captions.take(pa.array(np.asarray(rows, np.int64))).to_pylist()

    def objects(self, rows: np.ndarray, unnamed_only: bool = False) -> np.ndarray:
        """(n, V) bool: the objects of the records at `rows` (without those their captions
        name with `unnamed_only`)."""
        from . import objects
        true = self._objects[rows]
        return objects.unnamed(true, self._named[rows]) if unnamed_only else true
