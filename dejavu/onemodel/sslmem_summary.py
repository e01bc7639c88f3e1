"""SSLMem's numbers from its per-image table (definitions §6): the training and held-out
means of m, their AUC, and m against the k-NN partition. Pandas and numpy only: the report
reads these without importing torch (`onemodel.sslmem` computes the table)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attack.score import SHARES, top_count


def auc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """P(a positive's value > a negative's), ties counting half: the Mann–Whitney U over
    n1 n2. None when either side is empty."""
    positive, negative = np.asarray(positive, float), np.sort(np.asarray(negative, float))
    if len(positive) == 0 or len(negative) == 0:
        return None
    below = np.searchsorted(negative, positive, side="left")
    tied = np.searchsorted(negative, positive, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(positive) * len(negative)))


def _mean(x) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation; None when either is constant (or fewer than 2 values)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def partition_summary(train: pd.DataFrame, partition: pd.DataFrame,
                      top: float = 0.1) -> dict:
    """m against the k-NN partition of the training images (`partition`: id, set, group)."""
    unknown = set(partition["group"]) - set(SHARES)
    if unknown:
        raise ValueError(f"unknown partition groups {sorted(unknown)}; known: {list(SHARES)}")
    joined = train.merge(partition[["id", "set", "group"]], on=["id", "set"],
                         validate="one_to_one").sort_values("id", kind="stable")
    m = joined["m"].to_numpy()
    memorized = (joined["group"] == "memorized").to_numpy()
    out = {"n_partitioned": len(joined)}
    out.update({f"mean_m_{g}": _mean(m[(joined["group"] == g).to_numpy()]) for g in SHARES})
    out["corr_m_memorized"] = _correlation(m, memorized)  # point-biserial
    first = np.argsort(-m, kind="stable")[:top_count(len(m), top)] if len(m) else []
    out[f"share_memorized_top{round(100 * top)}"] = _mean(memorized[first])
    out["share_memorized_all"] = _mean(memorized)
    return out


def summarize(table: pd.DataFrame, partition: pd.DataFrame | None = None,
              top: float = 0.1) -> dict:
    """Plain numbers (JSON-able) on a `score_table`: mean m of the training images (sets A
    and B) and of the held-out ones, their difference, and the AUC of m telling training
    from held-out images (training positive). With `partition` (id, set, group for images of
    A and B, group one of score.SHARES): the mean m per group, the point-biserial
    correlation of m with being memorized, and the share of memorized images among the top
    `top` by m (ties by id) and among all. A number with no data (an empty group, a constant
    variable) is None, not NaN, so the summary stays valid JSON."""
    train = table[table["set"].isin(["A", "B"])]
    heldout = table[table["set"] == "heldout"]
    out = {"n_train": len(train), "n_heldout": len(heldout),
           "mean_m_train": _mean(train["m"]), "mean_m_heldout": _mean(heldout["m"])}
    out["mean_m_difference"] = _difference(out["mean_m_train"], out["mean_m_heldout"])
    out["auc_train_heldout"] = auc(train["m"], heldout["m"])
    if partition is not None:
        out.update(partition_summary(train, partition, top))
    return out
