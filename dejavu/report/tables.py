"""Pure table functions of the summary and the report: frames in, frames out.

`summary` builds `summary.csv` (definitions §9): the score rows, then the linear probe's,
the one-model test's (first classifier) and SSLMem's columns joined on their run. The rest
shape what the page shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attack.score import SHARES
from ..onemodel.sslmem_summary import summarize

SUMMARY_COLUMNS = [
    "dataset", "method", "backbone", "epoch", "train_size", "seed", "embedding", "k",
    "crop_mode", "control", "p", "n_attacked", "acc_target", "acc_reference", "score",
    "score_ci_low", "score_ci_high", "acc_target_all", "acc_reference_all", *SHARES,
    "variant",  # the first column after definitions §9's: the training variant (§10)
]
KEYS = ["dataset", "method", "backbone", "variant", "train_size", "seed", "embedding", "k",
        "crop_mode"]
RUN_KEYS = ["method", "backbone", "variant", "train_size", "seed", "epoch"]  # a pair at an epoch
PAIR_KEYS = ["method", "backbone", "variant", "train_size", "seed"]          # a model pair
PROBE_COLUMNS = ["probe_train_acc", "probe_test_acc", "probe_gap", "knn_test_acc"]
ONEMODEL_COLUMNS = {  # summary column <- one-model row column (first classifier)
    "onemodel_classifier": "classifier", "acc_classifier": "acc_classifier",
    "acc_classifier_all": "acc_classifier_all", "onemodel_score": "score",
    "onemodel_score_ci_low": "score_ci_low", "onemodel_score_ci_high": "score_ci_high",
    "onemodel_memorized": "memorized_one_model", "memorized_overlap": "memorized_overlap",
}
SSLMEM_COLUMNS = {"sslmem_train": "mean_m_train", "sslmem_heldout": "mean_m_heldout",
                  "sslmem_auc": "auc_train_heldout"}


# ---------------------------------------------------------------- summary.csv

def score_table(rows: list[dict]) -> pd.DataFrame:
    """The score rows, defined columns first, in a stable order."""
    table = pd.DataFrame(rows, columns=None if rows else SUMMARY_COLUMNS)
    extra = [c for c in table.columns if c not in SUMMARY_COLUMNS]
    return table[SUMMARY_COLUMNS + extra].sort_values(KEYS + ["epoch", "control"],
                                                      ignore_index=True)


def onemodel_table(rows: list[dict]) -> pd.DataFrame:
    """Every one-model test row (all classifiers and controls)."""
    if not rows:
        return pd.DataFrame(columns=KEYS + ["epoch", "control", "classifier"])
    return pd.DataFrame(rows).sort_values(KEYS + ["epoch", "control", "classifier"],
                                          ignore_index=True)


def probe_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Linear-probe accuracies per model pair and epoch, averaged over models A and B."""
    if rows.empty:
        return pd.DataFrame(columns=RUN_KEYS + PROBE_COLUMNS)
    if "knn_test_acc" not in rows:  # probes of runs without a public store
        rows = rows.assign(knn_test_acc=np.nan)
    mean = rows.groupby(RUN_KEYS)[["train_acc", "test_acc", "gap", "knn_test_acc"]].mean()
    return mean.reset_index().rename(columns={"train_acc": "probe_train_acc",
                                              "test_acc": "probe_test_acc",
                                              "gap": "probe_gap"})


def with_probe(summary: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """The summary with the probe columns of its model pair and epoch (definitions §9 allows
    more columns after the defined ones)."""
    merged = summary.merge(probes, on=RUN_KEYS, how="left")
    return merged[list(summary.columns) + PROBE_COLUMNS]


def with_onemodel(summary: pd.DataFrame, onemodel: pd.DataFrame,
                  classifier: str | None) -> pd.DataFrame:
    """The summary with the one-model columns of the first classifier; models tested by the
    one-model test alone (external ones) get rows of their own, their reference columns
    empty."""
    if onemodel.empty or classifier is None:
        return summary.reindex(columns=[*summary.columns, *ONEMODEL_COLUMNS])
    chosen = onemodel[onemodel["classifier"] == classifier]
    renamed = chosen.rename(columns={v: k for k, v in ONEMODEL_COLUMNS.items()})
    on = KEYS + ["epoch", "control"]
    renamed = renamed.reindex(columns=[*renamed.columns.difference(list(ONEMODEL_COLUMNS)),
                                       *ONEMODEL_COLUMNS])  # no reference: no overlap
    merged = summary.merge(renamed[on + list(ONEMODEL_COLUMNS)], on=on, how="left")
    alone = renamed.merge(summary[on], on=on, how="left", indicator=True)
    alone = alone[alone["_merge"] == "left_only"].drop(columns="_merge")
    if not alone.empty:
        merged = pd.concat([merged, alone.reindex(columns=merged.columns)], ignore_index=True)
    return merged.sort_values(KEYS + ["epoch", "control"], ignore_index=True)


def partition_of(samples: pd.DataFrame) -> pd.DataFrame:
    """id, set, group of the two-model partition (definitions §4) from one-model samples
    that carry the reference's verdict."""
    t, r = samples["correct_target"].astype(bool), samples["correct_reference"].astype(bool)
    group = np.select([t & ~r, ~t & r, t & r], ["memorized", "misrepresented", "correlated"],
                      "unassociated")
    return samples[["id", "set"]].assign(group=group)


def sslmem_table(tables: list[tuple[dict, pd.DataFrame]], samples: pd.DataFrame,
                 first: dict) -> pd.DataFrame:
    """SSLMem figures per model pair and epoch, against the two-model partition of the
    first crop mode, embedding, k and classifier (`first`: crop_mode, embedding, k,
    classifier) where the one-model test ran."""
    rows = []
    for run, table in tables:
        partition = None
        if not samples.empty:
            chosen = samples[(samples["control"] == "none")
                             & (samples[list(first)] == pd.Series(first)).all(axis=1)]
            chosen = chosen.loc[(chosen[list(run)] == pd.Series(run)).all(axis=1)]
            if not chosen.empty and "correct_reference" in chosen:
                partition = partition_of(chosen)
        rows.append({**run, **summarize(table, partition)})
    return pd.DataFrame(rows)


def with_sslmem(summary: pd.DataFrame, sslmem: pd.DataFrame) -> pd.DataFrame:
    """The summary with SSLMem's training and held-out means and AUC on the real test's
    rows of each model pair and epoch."""
    if sslmem.empty:
        return summary.reindex(columns=[*summary.columns, *SSLMEM_COLUMNS])
    figures = sslmem[RUN_KEYS + list(SSLMEM_COLUMNS.values())].rename(
        columns={v: k for k, v in SSLMEM_COLUMNS.items()}).assign(control="none")
    return summary.merge(figures, on=RUN_KEYS + ["control"], how="left")


# LayerMem (definitions §11): SSLMem of the row's own embedding
LAYERMEM_COLUMNS = {"layermem_train": "mean_m_train", "layermem_heldout": "mean_m_heldout",
                    "layermem_auc": "auc_train_heldout"}


def with_layermem(summary: pd.DataFrame, layermem: pd.DataFrame) -> pd.DataFrame:
    """The summary with SSLMem of each real-test row's embedding (LayerMem)."""
    if layermem.empty:
        return summary.reindex(columns=[*summary.columns, *LAYERMEM_COLUMNS])
    figures = layermem[RUN_KEYS + ["embedding", *LAYERMEM_COLUMNS.values()]].rename(
        columns={v: k for k, v in LAYERMEM_COLUMNS.items()}).assign(control="none")
    return summary.merge(figures, on=RUN_KEYS + ["embedding", "control"], how="left")


def summary(scores: pd.DataFrame, probes: pd.DataFrame, onemodel: pd.DataFrame,
            classifier: str | None, sslmem: pd.DataFrame,
            layermem: pd.DataFrame | None = None) -> pd.DataFrame:
    """summary.csv: the score rows with the probe, one-model, SSLMem and LayerMem columns."""
    out = with_sslmem(with_onemodel(with_probe(scores, probes), onemodel, classifier), sslmem)
    return with_layermem(out, pd.DataFrame() if layermem is None else layermem)


def with_labels(summary: pd.DataFrame, labels: dict | None) -> pd.DataFrame:
    """The recipe column (what the row's method's recipe changes; `shared` where nothing,
    `external` for models trained elsewhere) and, for a sweep's variants, the setting swept
    and its value (`variants.run_labels`)."""
    labels = labels or {"recipes": {}, "sweeps": []}
    out = summary.assign(recipe=summary["method"].map(labels["recipes"]).fillna("external"))
    setting, value = {}, {}
    for sweep in labels["sweeps"]:
        for variant, point in sweep["points"].items():
            setting[variant], value[variant] = sweep["setting"], point
    return out.assign(sweep=out["variant"].map(setting),
                      sweep_value=out["variant"].map(lambda v: value.get(v)))


# ---------------------------------------------------------------- what the page shows

def last_epoch(table: pd.DataFrame, keys: list[str] = PAIR_KEYS) -> pd.DataFrame:
    """The rows at the last epoch of each model pair."""
    return table[table["epoch"] == table.groupby(keys)["epoch"].transform("max")]


def seed_mean(table: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """Mean over seeds of `values`, with the seed count and, over two or more seeds, the
    standard deviation of the score."""
    grouped = table.groupby(keys, sort=True)
    out = grouped[values].mean()
    out["seeds"] = grouped.size()
    if "score" in values:
        out["score_sd_seeds"] = grouped["score"].std()
    return out.reset_index()


def method_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Methods side by side at the last epoch (the real test): score at p with its interval,
    the partition and the linear probe."""
    real = summary[(summary["control"] == "none")]
    last = last_epoch(real, ["method"])
    keys = ["method", "backbone", "variant", "train_size", "embedding", "k", "crop_mode",
            "epoch", *[c for c in ["recipe"] if c in summary]]  # what each method changes
    return seed_mean(last.fillna({"recipe": ""}) if "recipe" in last else last, keys,
                     ["score", "score_ci_low", "score_ci_high", "memorized", "misrepresented",
                      *[c for c in ["score_top5"] if c in summary], *PROBE_COLUMNS])


def embedding_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Backbone vs projector: the same model pair's score from each embedding."""
    real = summary[summary["control"] == "none"]
    keys = ["method", "backbone", "variant", "train_size", "seed", "epoch", "k", "crop_mode"]
    wide = real.assign(embedding="score_" + real["embedding"]).pivot_table(
        index=keys, columns="embedding", values="score").reset_index()
    wide.columns.name = None
    if {"score_backbone", "score_projector"} <= set(wide.columns):
        wide["projector_minus_backbone"] = wide["score_projector"] - wide["score_backbone"]
    return wide


def trend_rows(summary: pd.DataFrame, along: str) -> pd.DataFrame:
    """Rows for a trend along epochs (each size) or sizes (at each pair's last epoch)."""
    if along == "epoch":
        return summary
    return last_epoch(summary[summary["control"] != "untrained"])


def onemodel_vs_two_model(onemodel: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """The real test's one-model rows beside the two-model score and reference accuracy."""
    on = KEYS + ["epoch", "control"]
    both = onemodel.merge(paired[on + ["acc_reference_all", "score"]], on=on,
                          suffixes=("_onemodel", "_two_model"))
    both = both[both["control"] == "none"]
    return both[["method", "backbone", "variant", "train_size", "seed", "epoch", "embedding",
                 "classifier", "acc_classifier_all", "acc_reference_all", "score_onemodel",
                 "score_two_model", "memorized_one_model", "memorized_two_model",
                 "memorized_both", "memorized_overlap"]]


def crop_reject_counts(rejects: pd.DataFrame) -> pd.DataFrame:
    if rejects.empty:
        return rejects
    return rejects.groupby(["table", "reason"]).size().reset_index(name="images")


def input_problems(rejects: pd.DataFrame) -> pd.DataFrame:
    """Counts of the dataset's input problems by stage, kind and what was done about them."""
    if rejects.empty:
        return pd.DataFrame(columns=["stage", "kind", "action", "count", "example"])
    return (rejects.groupby(["stage", "kind", "action"], sort=True)
            .agg(count=("path", "size"), example=("path", "first")).reset_index())


def stage_times(times: pd.DataFrame) -> pd.DataFrame:
    """Wall seconds per stage, summed over its jobs (rows: stage, s)."""
    if times.empty:
        return pd.DataFrame(columns=["stage", "jobs", "total_s", "max_s"])
    table = times.groupby("stage")["s"].agg(["count", "sum", "max"])
    return table.rename(columns={"count": "jobs", "sum": "total_s", "max": "max_s"}
                        ).reset_index().sort_values("total_s", ascending=False)


RCDM_SELF = {"top1_retrieval": "self_top1", "top1_chance": "self_top1_chance",
             "mean_rank": "self_mean_rank", "class_recovery": "self_class",
             "class_recovery_originals": "self_class_originals", "class_chance": "class_chance"}


def rcdm_quality_table(qualities: list[dict]) -> pd.DataFrame:
    """One row per decoded run: self-reconstruction quality (mean of the two decoders) and
    how often attack samples show the true class, target decoder vs reference decoder."""
    rows = []
    for quality in qualities:
        decoders = list(quality["self"].values())
        row = dict(quality["run"])
        for key, name in RCDM_SELF.items():
            row[name] = float(np.mean([d[key] for d in decoders]))
        for group in ("memorized", "correlated"):
            attack = quality["attack"].get(group, {})
            row[f"{group}_images"] = attack.get("images", 0)
            row[f"{group}_target"] = attack.get("target", np.nan)
            row[f"{group}_reference"] = attack.get("reference", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_rows(summary: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The rows one sweep's figure draws: its variants and its methods' default runs at
    their last epoch (the first crop mode and k), the real test and the held-out control,
    each with the swept value (`x`; a list setting by its text)."""
    variants = {**{v: None for v in spec["points"]}, "default": None}
    rows = summary[summary["variant"].isin(variants) & summary["method"].isin(spec["methods"])
                   & summary["control"].isin(["none", "heldout"])]
    if rows.empty:
        return rows.assign(x=[])
    rows = last_epoch(rows)
    rows = rows[(rows["crop_mode"] == rows["crop_mode"].iloc[0]) & (rows["k"] == rows["k"].iloc[0])]
    value = [spec["points"].get(v, spec["base"].get(m))
             for v, m in zip(rows["variant"], rows["method"])]
    return rows.assign(x=[v if isinstance(v, (int, float)) else str(v) for v in value])
