"""Every file the summary and the report read: paths in, frames and arrays out.

Each path comes from the rule's inputs (nothing is found by globbing result folders, and no
wildcard is parsed back out of a path), except the benchmarks folder, which the page reads as
it stands when the report runs (see `benchmark_times`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.crops import object_box
from ..core.store import open_images, read_index


def files(inputs: dict, key: str) -> list[str]:
    """A rule input's paths as a list (Snakemake gives one path as a plain string)."""
    value = inputs.get(key, [])
    return [value] if isinstance(value, str) else list(value)


def json_rows(files: list[str]) -> list[dict]:
    """The rows of files that each hold a JSON list of rows (score, one-model)."""
    return [row for path in files for row in json.loads(Path(path).read_text())]


def labelled_parts(row_files: list[str], part_files: list[str], keys: list[str]) -> pd.DataFrame:
    """Per-row tables (`part_files`) labelled with `keys` of the first row of the JSON file
    beside each (`row_files`, the same order): curves of a score, samples of a one-model test."""
    parts = []
    for rows_path, part_path in zip(row_files, part_files, strict=True):
        meta = json.loads(Path(rows_path).read_text())[0]
        parts.append(pd.read_parquet(part_path).assign(**{k: meta[k] for k in keys}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def probe_rows(files: list[str]) -> pd.DataFrame:
    return pd.DataFrame([json.loads(Path(p).read_text()) for p in files])


def sslmem_tables(files: list[str], runs: list[dict]) -> list[tuple[dict, pd.DataFrame]]:
    """Each SSLMem table with its run (method, backbone, train_size, seed, epoch), as the
    rule lists them side by side."""
    return [(run, pd.read_parquet(path)) for run, path in zip(runs, files, strict=True)]


def layermem_rows(files: list[str], runs: list[dict]) -> pd.DataFrame:
    """Every run's LayerMem rows (embedding, SSLMem figures), labelled with the run."""
    parts = [pd.read_parquet(path).assign(**run) for run, path in zip(runs, files, strict=True)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def crop_rejects(crop_tables: list[str]) -> pd.DataFrame:
    """Attacked images without a valid crop, with the reason, per crop table."""
    parts = []
    for path in crop_tables:
        table = pd.read_parquet(path)
        bad = table.loc[~table["valid"], ["id", "set", "reason"]]
        parts.append(bad.assign(table=Path(path).parent.name + "/" + Path(path).stem))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def split_sizes(files: list[str], sizes: list[int]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p).assign(train_size=f"n{n}") for p, n in zip(files, sizes,
                                                                                   strict=True)])


def benchmark_times(benchmarks_dir: str) -> pd.DataFrame:
    """stage, s: every job's wall seconds from Snakemake's benchmark files. Read as the folder
    stands when the report runs (the report's own time is not in it yet): a view of where
    the time went, not a number the workflow computes."""
    rows = [{"stage": path.relative_to(benchmarks_dir).parts[0],
             "s": float(pd.read_csv(path, sep="\t")["s"].iloc[0])}
            for path in Path(benchmarks_dir).glob("*/**/*.tsv")]
    return pd.DataFrame(rows, columns=["stage", "s"])


def rcdm_quality(files: list[str]) -> list[dict]:
    return [json.loads(Path(path).read_text()) for path in files]


def region(image: np.ndarray, entry) -> np.ndarray:
    """The image's own region of its stored canvas."""
    return image[:int(entry["height"]), :int(entry["width"])]


def example_panel(knn_target: str, knn_reference: str, crops_store: str, images_path: str,
                  index_path: str, n: int = 6, neighbours_shown: int = 5) -> dict:
    """The most confident memorized crops of set A (target right, reference wrong), each
    with its original, object box and up to `neighbours_shown` nearest public images under
    the target and the reference (fewer where k is smaller)."""
    t = pd.read_parquet(knn_target, columns=["id", "set", "correct", "confidence", "crop_row",
                                             "row", "label"]).set_index("id")
    r = pd.read_parquet(knn_reference, columns=["id", "correct"]).set_index("id")
    a = t[t["set"] == "A"].join(r, rsuffix="_ref")
    chosen = a[a["correct"] & ~a["correct_ref"]].sort_values("confidence", ascending=False)[:n]
    chosen = chosen.assign(neighbors=neighbours_of(knn_target, chosen.index),
                           neighbors_ref=neighbours_of(knn_reference, chosen.index))
    images, crops = open_images(images_path), open_images(crops_store)
    shown = [chosen["row"].to_numpy(np.int64)] + [
        np.asarray(nb[:neighbours_shown], np.int64)
        for nb in (*chosen["neighbors"], *chosen["neighbors_ref"])]
    index = read_index(index_path, rows=np.concatenate(shown))

    def neighbours(rows, name):
        rows = np.asarray(rows[:neighbours_shown])
        order = np.argsort(np.argsort(rows))
        return (images.get_orthogonal_selection((np.sort(rows),))[order],
                index.loc[rows, "label"].to_numpy(), name)

    return dict(
        crops=[crops[int(c)] for c in chosen["crop_row"]],
        originals=[region(images[int(row)], index.loc[int(row)]) for row in chosen["row"]],
        boxes=[object_box(index.loc[int(row), "boxes"]) for row in chosen["row"]],
        neighbours_t=[neighbours(nb, "T") for nb in chosen["neighbors"]],
        neighbours_r=[neighbours(nb, "R") for nb in chosen["neighbors_ref"]],
        captions=[f"{i} label {lab}" for i, lab in zip(chosen.index, chosen["label"])],
    )


def neighbours_of(knn_path: str, ids: pd.Index) -> list:
    """The neighbour rows of the crops `ids` of a k-NN table (the column read without
    Python objects for the others)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    table = pq.read_table(knn_path, columns=["id", "neighbors"])
    chosen = pc.is_in(table["id"], pa.array(list(ids), type=table["id"].type))
    wanted = table.filter(chosen).to_pandas().set_index("id")
    return [wanted.loc[i, "neighbors"] for i in ids]


def reconstruction_examples(table_path: str, samples_path: str, images_path: str,
                            index_path: str, half: str = "A", per_group: int = 4) -> list[dict]:
    """The attacked images of one half to show (memorized, then correlated), each with its
    crop, original, and the target's and reference's samples with their judged classes."""
    import zarr
    table = pd.read_parquet(table_path)
    stored = zarr.open_group(samples_path, mode="r")
    attack = table[(table["kind"] == "attack") & (table["half"] == half)]
    firsts = attack.drop_duplicates("id")
    picked = pd.concat([firsts[firsts["group"] == g].head(per_group)
                        for g in ("memorized", "correlated")])
    images = open_images(images_path)
    index = read_index(index_path, rows=picked["row"].to_numpy(np.int64))
    examples = []
    for _, ex in picked.iterrows():
        mine = attack[attack["id"] == ex["id"]].sort_values("sample")
        row = int(ex["row"])
        examples.append(dict(
            group=ex["group"], label=int(ex["label"]),
            crop=stored["crops"][int(ex["crop_image"])],
            original=region(images[row], index.loc[row]),
            box=object_box(index.loc[row, "boxes"]),
            **{role: (stored["samples"].get_orthogonal_selection(
                (np.sort(part["image"].to_numpy()),)), part["recovered"].to_numpy())
               for role, part in mine.groupby("decoder")}))
    return examples


def self_reconstructions(table_path: str, samples_path: str, images_path: str,
                         index_path: str, n: int = 10) -> dict:
    """Up to `n` public test images spread over the decoded ones: originals, and what
    decoders A and B drew from each one's own embedding."""
    import zarr
    table = pd.read_parquet(table_path)
    stored = zarr.open_group(samples_path, mode="r")["samples"]
    own = table[table["kind"] == "self"]
    shown = own.drop_duplicates("id")
    shown = shown.iloc[np.linspace(0, len(shown) - 1, min(n, len(shown))).astype(int)]
    images = open_images(images_path)
    index = read_index(index_path, rows=shown["row"].to_numpy(np.int64))
    out = {"original": [], "decoder A": [], "decoder B": []}
    for _, ex in shown.iterrows():
        row = int(ex["row"])
        out["original"].append(region(images[row], index.loc[row]))
        for decoder in ("A", "B"):
            mine = own[(own["id"] == ex["id"]) & (own["decoder"] == decoder)]
            out[f"decoder {decoder}"].append(stored[int(mine["image"].iloc[0])])
    return out
