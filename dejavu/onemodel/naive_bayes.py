"""The naive Bayes correlation classifier over discrete crop tags (`onemodel.correlation`
uses it beside its ResNet), and where the tags come from: the synthetic benchmark's own
scene and detail colours, or a tags file. NumPy and pandas only.

`score(c) = prod_t count_c(t) / count(t)` over a crop's distinct known tags, with Laplace
smoothing, computed as a sum of logs; normalised over classes by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


# ---------------------------------------------------------------- naive Bayes over tags

@dataclass(frozen=True)
class TagCounts:
    """count_c(t) of the training crops: `counts[i, c]` for tag `tags[i]`."""
    tags: dict[str, int]
    counts: np.ndarray


def fit_naive_bayes(tags: list[list[str]], labels: np.ndarray, classes: int) -> TagCounts:
    """Per tag and class, how many training crops of the class carry the tag (a crop counts
    a tag once)."""
    vocab: dict[str, int] = {}
    for crop_tags in tags:
        for tag in crop_tags:
            vocab.setdefault(tag, len(vocab))
    counts = np.zeros((len(vocab), classes), np.int64)
    for crop_tags, label in zip(tags, labels):
        for tag in set(crop_tags):
            counts[vocab[tag], label] += 1
    return TagCounts(vocab, counts)


def naive_bayes_log_scores(tags: list[list[str]], fitted: TagCounts,
                           smoothing: float = 1.0) -> np.ndarray:
    """(N, C) log score(c) = sum over the crop's distinct known tags of
    log((count_c(t) + a) / (count(t) + a C)); a tag never seen in training says nothing."""
    classes = fitted.counts.shape[1]
    per_tag = np.log((fitted.counts + smoothing)
                     / (fitted.counts.sum(axis=1, keepdims=True) + smoothing * classes))
    scores = np.zeros((len(tags), classes))
    for i, crop_tags in enumerate(tags):
        # sorted: a set's order follows the process's string hash seed, and so would the sum
        known = [fitted.tags[t] for t in sorted(set(crop_tags)) if t in fitted.tags]
        if known:
            scores[i] = per_tag[known].sum(axis=0)
    return scores


# ---------------------------------------------------------------- crop tags

def detail_colour(rgb) -> str:
    """A detail's colour as one of 8 names: each channel bright (1) or dark (0)."""
    return "detail:" + "".join("1" if v >= 0.5 else "0" for v in rgb)


def synthetic_tags(index: pd.DataFrame, crops: pd.DataFrame) -> list[list[str]]:
    """Tags of each crop of the synthetic benchmark: its image's scene type and the colours
    of the details (`synth._draw_details`) whose extent overlaps the crop rectangle."""
    tags = []
    for row, x0, y0, x1, y1 in crops[["row", "x0", "y0", "x1", "y1"]].itertuples(index=False):
        image = index.loc[row]
        crop_tags = [f"scene:{int(image['scene'])}"]
        for cx, cy, r, _disc, *rgb in image["details"]:
            if cx + r > x0 and cx - r < x1 and cy + r > y0 and cy - r < y1:
                crop_tags.append(detail_colour(rgb))
        tags.append(crop_tags)
    return tags


def read_tags(path: str) -> pd.DataFrame:
    """A tags file: CSV or Parquet with columns `id` and `tag`, one row per (image, tag)."""
    table = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    missing = {"id", "tag"} - set(table.columns)
    if missing:
        raise ValueError(f"tags file {path} lacks columns {sorted(missing)} (needs id, tag: "
                         f"one row per image and tag)")
    return table.astype({"id": str, "tag": str})


def tags_of(table: pd.DataFrame, ids: pd.Series) -> list[list[str]]:
    """The tags of each id (none for an id the table does not name)."""
    grouped = table.groupby("id")["tag"].agg(list)
    return [grouped.get(i, []) for i in ids]
