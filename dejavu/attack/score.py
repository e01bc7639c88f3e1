"""The two-model déjà vu test (definitions §4): top-p accuracy, score, partition, swap average;
each also with top-5 label inference (the true class among the neighbours' five most voted).

Each *half* attacks one set with a target model T (trained on it) and a reference model R
(not trained on it). A and B are exchangeable, so every reported number is the mean of the
half attacking A (T = model A) and the half attacking B (T = model B). The held-out control
attacks a set neither model saw, once with each model as target.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

SHARES = ("memorized", "misrepresented", "correlated", "unassociated")


def confidence_order(confidence: np.ndarray, mean_distance: np.ndarray,
                     sample_id: np.ndarray) -> np.ndarray:
    """Indices from most to least confident; ties: smaller mean neighbour distance, then id."""
    return np.lexsort((sample_id, mean_distance, -confidence))


def top_count(n: int, p: float) -> int:
    """How many images the top-p fraction keeps: ceil(p n), at least 1."""
    return max(1, math.ceil(p * n - 1e-9))


def topp_accuracy(correct: np.ndarray, order: np.ndarray, p: float) -> float:
    """Accuracy over the first ceil(p n) images of `order`."""
    return float(correct[order[:top_count(len(order), p)]].mean())


def partition(correct_t: np.ndarray, correct_r: np.ndarray) -> dict[str, float]:
    """Shares of memorized (T right, R wrong), misrepresented (T wrong, R right),
    correlated (both right), unassociated (both wrong); they sum to 1."""
    t, r = correct_t.astype(bool), correct_r.astype(bool)
    return {"memorized": float(np.mean(t & ~r)), "misrepresented": float(np.mean(~t & r)),
            "correlated": float(np.mean(t & r)), "unassociated": float(np.mean(~t & ~r))}


@dataclass(frozen=True)
class Half:
    """One direction of the test, aligned by sample: arrays of shape (n,). `correct5_*`:
    whether the true class is among the five classes the neighbours vote for most (top-5
    label inference), where the k-NN table has it."""
    sample_id: np.ndarray
    correct_t: np.ndarray
    confidence_t: np.ndarray
    distance_t: np.ndarray
    correct_r: np.ndarray
    confidence_r: np.ndarray
    distance_r: np.ndarray
    correct5_t: np.ndarray | None = None
    correct5_r: np.ndarray | None = None

    def outcomes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(target, reference) correctness: top-1, then top-5 where known."""
        both = [(self.correct_t, self.correct_r)]
        if self.correct5_t is not None:
            both.append((self.correct5_t, self.correct5_r))
        return both

    def orders(self) -> tuple[np.ndarray, np.ndarray]:
        return (confidence_order(self.confidence_t, self.distance_t, self.sample_id),
                confidence_order(self.confidence_r, self.distance_r, self.sample_id))


def score_half(half: Half, p: float) -> dict[str, float]:
    """acc_T(p) and acc_R(p), each over its own model's top-p, their difference, overall
    accuracies and the partition."""
    order_t, order_r = half.orders()
    acc_t, acc_r = topp_accuracy(half.correct_t, order_t, p), topp_accuracy(half.correct_r,
                                                                             order_r, p)
    out = {"acc_target": acc_t, "acc_reference": acc_r, "score": acc_t - acc_r,
           "acc_target_all": float(half.correct_t.mean()),
           "acc_reference_all": float(half.correct_r.mean()),
           **partition(half.correct_t, half.correct_r), "n_attacked": len(half.sample_id)}
    if half.correct5_t is not None:  # the same top-p images, judged by their top-5
        acc5_t = topp_accuracy(half.correct5_t, order_t, p)
        acc5_r = topp_accuracy(half.correct5_r, order_r, p)
        out.update(acc_target_top5=acc5_t, acc_reference_top5=acc5_r,
                   score_top5=acc5_t - acc5_r,
                   memorized_top5=partition(half.correct5_t, half.correct5_r)["memorized"])
    return out


def swap_average(results: list[dict[str, float]]) -> dict[str, float]:
    """Mean over the halves of every number (n_attacked: the distinct images, summed by the
    caller where halves attack different sets)."""
    return {key: float(np.mean([r[key] for r in results])) for key in results[0]}


BOOT_CHUNK = 64  # resamples drawn and sorted at once (memory: BOOT_CHUNK x n per half)


def bootstrap_curves(halves: list[Half], p_grid: list[float], n_boot: int,
                     seed: int, top5: bool = False) -> tuple[np.ndarray, ...]:
    """(acc_T, acc_R), each (n_boot, len(p_grid)): swap-averaged top-p accuracies of
    resamples of each half's attacked images (with replacement). Rank order is global, so a
    resample's top-p set is the first ceil(p n) of the resample sorted by rank; one sort per
    resample and model serves every p. Drawn in chunks from one stream: the numbers do not
    depend on the chunk size. `top5`: also (acc_T, acc_R) of the same resamples judged by
    top-5 label inference (one sort serves both)."""
    rng = np.random.default_rng(seed)
    judged = 2 if top5 else 1
    acc = np.zeros((judged, 2, n_boot, len(p_grid)))
    for half in halves:
        n = len(half.sample_id)
        counts = np.array([top_count(n, p) for p in p_grid])
        ranks = []
        for order in half.orders():
            rank = np.empty(n, np.int64)
            rank[order] = np.arange(n)
            ranks.append(rank)
        outcomes = half.outcomes()[:judged]
        for lo in range(0, n_boot, BOOT_CHUNK):
            draws = rng.integers(0, n, size=(min(BOOT_CHUNK, n_boot - lo), n))
            for i, rank in enumerate(ranks):
                ranked = np.take_along_axis(draws, np.argsort(rank[draws], axis=1), axis=1)
                for j, correct in enumerate(outcomes):
                    hits = np.cumsum(correct[i][ranked], axis=1)
                    acc[j, i, lo:lo + len(draws)] += hits[:, counts - 1] / counts
    acc /= len(halves)
    return tuple(acc.reshape(2 * judged, n_boot, len(p_grid)))


def bootstrap_scores(halves: list[Half], p: float, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot,) swap-averaged scores at p of the resamples of `bootstrap_curves`."""
    acc_t, acc_r = bootstrap_curves(halves, [p], n_boot, seed)
    return acc_t[:, 0] - acc_r[:, 0]


def curves(halves: list[Half], p_grid: list[float], boot_t: np.ndarray,
           boot_r: np.ndarray) -> pd.DataFrame:
    """Figure 3's table: swap-averaged acc_T(p), acc_R(p) and their difference at each p of
    the grid, each with its bootstrap 95 % interval (columns *_low, *_high) from the
    resampled accuracies of `bootstrap_curves` over the same grid."""
    per_half = {"acc_target": [], "acc_reference": [], "score": []}
    for half in halves:
        order_t, order_r = half.orders()
        acc_t = np.array([topp_accuracy(half.correct_t, order_t, p) for p in p_grid])
        acc_r = np.array([topp_accuracy(half.correct_r, order_r, p) for p in p_grid])
        for name, value in (("acc_target", acc_t), ("acc_reference", acc_r),
                            ("score", acc_t - acc_r)):
            per_half[name].append(value)
    point = {name: np.mean(values, axis=0) for name, values in per_half.items()}
    table = {"p": p_grid}
    for name, boot in (("acc_target", boot_t), ("acc_reference", boot_r),
                       ("score", boot_t - boot_r)):
        table[name] = point[name]
        table[f"{name}_low"], table[f"{name}_high"] = np.quantile(boot, [0.025, 0.975], axis=0)
    return pd.DataFrame(table)


def make_half(knn_t: pd.DataFrame, knn_r: pd.DataFrame, attacked: str,
              part: slice = slice(None)) -> Half:
    """Join both models' k-NN results on the images of set `attacked` (sorted by id, then
    `part` of them)."""
    t = knn_t[knn_t["set"] == attacked].set_index("id").sort_index().iloc[part]
    r = knn_r[knn_r["set"] == attacked].set_index("id").sort_index().iloc[part]
    if not t.index.equals(r.index):
        raise ValueError(f"target and reference k-NN tables attack different {attacked} images")
    top5 = "correct_top5" in t and "correct_top5" in r
    return Half(t.index.to_numpy(), t["correct"].to_numpy(), t["confidence"].to_numpy(),
                t["mean_distance"].to_numpy(), r["correct"].to_numpy(),
                r["confidence"].to_numpy(), r["mean_distance"].to_numpy(),
                t["correct_top5"].to_numpy() if top5 else None,
                r["correct_top5"].to_numpy() if top5 else None)


def evaluate(halves: list[Half], p: float, p_grid: list[float], n_boot: int, seed: int):
    """Swap-averaged summary with a bootstrap 95 % interval, the curves with theirs, and
    the resampled scores at p."""
    summary = swap_average([score_half(h, p) for h in halves])
    summary["n_attacked"] = int(len(np.unique(np.concatenate([h.sample_id for h in halves]))))
    # one set of resamples serves the curves and the score at p (appended to the grid),
    # judged by top-1 and, where the tables have it, top-5 label inference
    top5 = all(h.correct5_t is not None for h in halves)
    boot_t, boot_r, *boot5 = bootstrap_curves(halves, [*p_grid, p], n_boot, seed, top5)
    boot = boot_t[:, -1] - boot_r[:, -1]
    summary["score_ci_low"], summary["score_ci_high"] = (float(v) for v in
                                                         np.quantile(boot, [0.025, 0.975]))
    if top5:
        low, high = np.quantile(boot5[0][:, -1] - boot5[1][:, -1], [0.025, 0.975])
        summary["score_top5_ci_low"], summary["score_top5_ci_high"] = float(low), float(high)
    return summary, curves(halves, p_grid, boot_t[:, :-1], boot_r[:, :-1]), boot


def heldout_halves(a: pd.DataFrame, b: pd.DataFrame, split: bool) -> list[Half]:
    """The held-out control, attacked like A and B.

    split=True: the held-out images (sorted by id) alternate between a half attacked with
    target A and a half attacked with target B -- the same design as the real test, on images
    neither model saw. split=False is definitions §1 to the letter (every held-out image attacked in
    both directions), whose swap average is identically zero: acc_T and acc_R then average
    the same two numbers.
    """
    if split:
        return [make_half(a, b, "heldout", slice(0, None, 2)),
                make_half(b, a, "heldout", slice(1, None, 2))]
    return [make_half(a, b, "heldout"), make_half(b, a, "heldout")]


def run(knn_a: str, knn_b: str, out_json: str, out_curves: str, *, epoch: int, p: float,
        p_grid: list[float], n_boot: int, seed: int, combination: dict,
        split_heldout: bool = True, out_boot: str | None = None) -> None:
    """Score one (model pair, epoch, crop, embedding, k); `combination` holds the summary
    columns that identify it (method, backbone, ...). `out_boot`: the resampled scores at p
    (columns control, score). Two runs attacking the same images with the same seed draw
    the same resamples, so the difference of their resampled scores is a paired bootstrap
    of the difference of their scores (a mitigation's change, definitions §10)."""
    from .knn import read_scored
    a, b = read_scored(knn_a), read_scored(knn_b)
    tests = {"untrained" if epoch == 0 else "none": [make_half(a, b, "A"), make_half(b, a, "B")]}
    if epoch > 0 and (a["set"] == "heldout").sum() >= 2:
        tests["heldout"] = heldout_halves(a, b, split_heldout)
    rows, tables, boots = [], [], []
    for control, halves in tests.items():
        summary, curve_table, boot = evaluate(halves, p, p_grid, n_boot, seed)
        rows.append({**combination, "epoch": epoch, "control": control, "p": p, **summary})
        tables.append(curve_table.assign(control=control))
        boots.append(pd.DataFrame({"control": control, "score": boot}))
    with open(out_json, "w") as f:
        json.dump(rows, f, indent=1)
    pd.concat(tables, ignore_index=True).to_parquet(out_curves, index=False)
    if out_boot is not None:
        pd.concat(boots, ignore_index=True).to_parquet(out_boot, index=False)
