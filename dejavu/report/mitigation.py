"""Mitigations and the privacy-utility frontier (definitions §10): frames in, frames out.

A variant's effect is its change against the `default` variant of the same method,
backbone, size, seed, epoch and attack: in déjà vu score and in utility (linear-probe and
k-NN accuracy on the public test split), each with a paired bootstrap interval.

- Score: the score stage of every variant resamples the same attacked images with the same
  seed (the split and crops are shared, `score.seed` is one), so replicate i of one run and
  replicate i of the other are the same resample; their difference is the paired bootstrap
  of the change.
- Utility: every model classifies the same public test images; per image, the correctness
  averaged over models A and B, differenced between the variants, resampled over images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .loading import labelled_parts
from .tables import KEYS, RUN_KEYS

DEFAULT = "default"
UTILITIES = {"probe_test_acc": "probe_correct", "knn_test_acc": "knn_correct"}
CHANGE_COLUMNS = [f"{name}_change{end}" for name in ("score", *UTILITIES)
                  for end in ("", "_ci_low", "_ci_high")]
# Runs on one frontier: one attack, one embedding. The utilities are a model's (its probe
# and k-NN read one embedding), the score is the embedding's, so across embeddings a
# model's inner layer, scoring lower at the same accuracy, would always beat its output
FRONTIER_GROUP = ["dataset", "crop_mode", "k", "p", "embedding"]
BOOT_CHUNK = 64  # resamples drawn at once (the numbers do not depend on it)


def score_replicates(score_files: list[str], boot_files: list[str]) -> pd.DataFrame:
    """Resampled scores at p, labelled with their row's keys, epoch and control, in
    replicate order."""
    boot = labelled_parts(score_files, boot_files, KEYS + ["epoch"])
    if boot.empty:
        return boot
    return boot.assign(replicate=boot.groupby(KEYS + ["epoch", "control"]).cumcount())


def utility_parts(probe_files: list[str], correct_files: list[str]) -> pd.DataFrame:
    """Per public test image and model: the probe's and the k-NN's correctness, labelled
    with the model's run keys and subset."""
    parts = []
    for meta_path, correct_path in zip(probe_files, correct_files, strict=True):
        meta = json.loads(Path(meta_path).read_text())
        parts.append(pd.read_parquet(correct_path).assign(
            **{k: meta[k] for k in RUN_KEYS + ["subset"]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def interval(deltas: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(deltas, [0.025, 0.975])
    return float(low), float(high)


def score_changes(summary: pd.DataFrame, replicates: pd.DataFrame) -> pd.DataFrame:
    """score_change (variant minus default) with its paired interval, per real-test row of
    a variant whose default row was computed too."""
    on = [k for k in KEYS if k != "variant"] + ["epoch", "control"]
    real = summary[summary["control"] == "none"]
    variant, default = real[real["variant"] != DEFAULT], real[real["variant"] == DEFAULT]
    pairs = variant.merge(default[on + ["score"]], on=on, suffixes=("", "_default"))
    if pairs.empty or replicates.empty:
        return pd.DataFrame(columns=KEYS + ["epoch", "control"] + CHANGE_COLUMNS[:3])
    boots = {key: group.sort_values("replicate")["score"].to_numpy()
             for key, group in replicates.groupby(KEYS + ["epoch", "control"])}
    rows = []
    for row in pairs.itertuples(index=False):
        row = row._asdict()
        key = tuple(row[k] for k in KEYS + ["epoch", "control"])
        ours = boots.get(key)
        theirs = boots.get(tuple(row[k] if k != "variant" else DEFAULT
                                 for k in KEYS + ["epoch", "control"]))
        low = high = np.nan
        if ours is not None and theirs is not None and len(ours) == len(theirs):
            low, high = interval(ours - theirs)
        rows.append({**{k: row[k] for k in KEYS + ["epoch", "control"]},
                     "score_change": row["score"] - row["score_default"],
                     "score_change_ci_low": low, "score_change_ci_high": high})
    return pd.DataFrame(rows)


def utility_changes(parts: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Per variant run: the change in probe and k-NN test accuracy (mean of models A and
    B) against the default run, with intervals from resampling the test images."""
    columns = [c for c in CHANGE_COLUMNS if not c.startswith("score")]
    if parts.empty:
        return pd.DataFrame(columns=RUN_KEYS + columns)
    measured = [c for c in UTILITIES.values() if c in parts]
    per_image = parts.groupby(RUN_KEYS + ["row"])[measured].mean().reset_index()
    run_keys = [k for k in RUN_KEYS if k != "variant"]
    default = per_image[per_image["variant"] == DEFAULT].drop(columns="variant")
    rows = []
    for keys, ours in per_image[per_image["variant"] != DEFAULT].groupby(RUN_KEYS):
        run = dict(zip(RUN_KEYS, keys))
        theirs = default.merge(pd.DataFrame([{k: run[k] for k in run_keys}]), on=run_keys)
        both = ours.merge(theirs, on=run_keys + ["row"], suffixes=("", "_default"))
        if both.empty or len(both) != len(ours):
            continue
        out = dict(run)
        for name, column in UTILITIES.items():
            if column not in measured:
                continue
            delta = (both[column].astype(float) - both[f"{column}_default"].astype(float))
            out[f"{name}_change"] = float(delta.mean())
            out[f"{name}_change_ci_low"], out[f"{name}_change_ci_high"] = interval(
                resampled_means(delta.to_numpy(), n_boot, seed))
        rows.append(out)
    return pd.DataFrame(rows).reindex(columns=RUN_KEYS + columns)


def resampled_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot,) means of resamples (with replacement) of `values`, drawn in chunks."""
    rng, means = np.random.default_rng(seed), np.empty(n_boot)
    for lo in range(0, n_boot, BOOT_CHUNK):
        draws = rng.integers(0, len(values), size=(min(BOOT_CHUNK, n_boot - lo), len(values)))
        means[lo:lo + len(draws)] = values[draws].mean(axis=1)
    return means


def with_changes(summary: pd.DataFrame, scores: pd.DataFrame,
                 utilities: pd.DataFrame) -> pd.DataFrame:
    """The summary with the change columns on the real test's rows of each variant."""
    out = summary
    if not scores.empty:
        out = out.merge(scores, on=KEYS + ["epoch", "control"], how="left")
    if not utilities.empty:
        out = out.merge(utilities.assign(control="none"), on=RUN_KEYS + ["control"],
                        how="left")
    return out.reindex(columns=list(summary.columns) + CHANGE_COLUMNS)


def pareto(utility: pd.Series, score: pd.Series) -> np.ndarray:
    """Whether each point is Pareto-optimal: no other point has at least its utility and
    at most its score, and is better in one of them."""
    u, s = utility.to_numpy()[:, None], score.to_numpy()[:, None]  # row i, column j
    at_least = (u.T >= u) & (s.T <= s)
    better = (u.T > u) | (s.T < s)
    return ~(at_least & better).any(axis=1)


def frontier(summary: pd.DataFrame, utility: str = "probe_test_acc") -> pd.Series:
    """Whether each real-test row is Pareto-optimal (`pareto`) among the runs of its attack
    and embedding (same dataset, crop mode, k, p, embedding) by `utility` and score;
    missing (NA) for controls and
    for rows without the utility, which are on no frontier (a run without the probe has
    none, so its summary matches a run with it wherever both are filled)."""
    real = summary[(summary["control"] == "none") & summary[utility].notna()]
    optimal = pd.Series(pd.NA, index=summary.index, dtype="boolean")
    optimal[real.index] = False
    for _, group in real.groupby(FRONTIER_GROUP):
        optimal[group.index[pareto(group[utility], group["score"])]] = True
    return optimal
