"""The vision-language test's population numbers (definitions §14): from per-record
precision and recall of a target and a reference model on the same records, how often the
target does better than the reference, by how much on the records it does best, and the
gap between their recall distributions. Torch-free.
"""

from __future__ import annotations

import numpy as np

TOP_SHARES = (0.001, 0.01, 0.1)  # the best-recovered records' shares the gaps are taken over


def population_gap(target: np.ndarray, reference: np.ndarray) -> float:
    """Share of records where the target's value beats the reference's, minus the share
    where it loses (ties count for neither); NaN records are left out."""
    keep = ~(np.isnan(target) | np.isnan(reference))
    if not keep.any():
        return float("nan")
    return float(np.mean(np.sign(target[keep] - reference[keep])))


def ccdf(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """P(value > t) at each threshold t, over the non-NaN values."""
    values = np.sort(values[~np.isnan(values)])
    return 1.0 - np.searchsorted(values, thresholds, side="right") / max(len(values), 1)


def ccdf_area(values: np.ndarray) -> float:
    """The area under the complementary CDF of values in [0, 1]: the integral over t of
    P(value > t), which equals their mean."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def f_score(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Per record 2PR / (P + R), 0 where both are 0 (NaN where recall is)."""
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(total),
                     where=total > 0) + np.where(np.isnan(recall), np.nan, 0.0)


def top_gaps(hits_t, hits_r, precision_t, precision_r, recall_t, recall_r,
             shares=TOP_SHARES) -> dict[str, float]:
    """Records ranked by how many more true objects the target finds than the reference
    (ties: record order); over the top `share` of them (at least one record), the mean
    precision, recall and F gaps, target minus reference."""
    keep = ~(np.isnan(recall_t) | np.isnan(recall_r))
    order = np.argsort(-(hits_t - hits_r)[keep], kind="stable")
    f_t, f_r = f_score(precision_t, recall_t)[keep], f_score(precision_r, recall_r)[keep]
    gaps = {"precision": (precision_t - precision_r)[keep], "recall": (recall_t - recall_r)[keep],
            "f": f_t - f_r}
    out = {}
    for share in shares:
        top = order[:max(1, int(np.ceil(share * len(order))))] if len(order) else order
        for name, gap in gaps.items():
            out[f"top{share:g}_{name}_gap"] = float(gap[top].mean()) if len(top) else np.nan
    return out


def gaps(precision_t, recall_t, hits_t, precision_r, recall_r, hits_r,
         shares=TOP_SHARES) -> dict[str, float]:
    """Every population number of one direction (target and reference on the same
    records): precision and recall gaps, the recall CCDF area gap, and the top-share gaps."""
    return {"precision_gap": population_gap(precision_t, precision_r),
            "recall_gap": population_gap(recall_t, recall_r),
            "recall_ccdf_area_gap": ccdf_area(recall_t) - ccdf_area(recall_r),
            **top_gaps(hits_t, hits_r, precision_t, precision_r, recall_t, recall_r, shares)}
