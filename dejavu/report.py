"""The report: `summary.csv` (definitions §9) and one self-contained HTML page.

Plot functions take tables and return figures; they recompute nothing. The HTML embeds
every figure as a PNG (also written under `figures/`), so the page can be mailed around.
"""

from __future__ import annotations

import base64
import html
import importlib.metadata
import io
import json
import subprocess
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from .crops import object_box  # noqa: E402
from .score import SHARES  # noqa: E402
from .store import open_images, read_index  # noqa: E402

SUMMARY_COLUMNS = [
    "dataset", "method", "backbone", "epoch", "train_size", "seed", "embedding", "k",
    "crop_mode", "control", "p", "n_attacked", "acc_target", "acc_reference", "score",
    "score_ci_low", "score_ci_high", "acc_target_all", "acc_reference_all", *SHARES,
]
KEYS = ["dataset", "method", "backbone", "train_size", "seed", "embedding", "k", "crop_mode"]


# ---------------------------------------------------------------- tables

def summary_table(score_files: list[str]) -> pd.DataFrame:
    rows = [row for path in score_files for row in json.loads(Path(path).read_text())]
    table = pd.DataFrame(rows, columns=None if rows else SUMMARY_COLUMNS)
    extra = [c for c in table.columns if c not in SUMMARY_COLUMNS]
    return table[SUMMARY_COLUMNS + extra].sort_values(KEYS + ["epoch", "control"],
                                                      ignore_index=True)


ONEMODEL_COLUMNS = {  # summary column <- one-model row column (first classifier)
    "onemodel_classifier": "classifier", "acc_classifier": "acc_classifier",
    "acc_classifier_all": "acc_classifier_all", "onemodel_score": "score",
    "onemodel_score_ci_low": "score_ci_low", "onemodel_score_ci_high": "score_ci_high",
    "onemodel_memorized": "memorized_one_model", "memorized_overlap": "memorized_overlap",
}
SSLMEM_COLUMNS = {"sslmem_train": "mean_m_train", "sslmem_heldout": "mean_m_heldout",
                  "sslmem_auc": "auc_train_heldout"}
RUN_KEYS = ["method", "backbone", "train_size", "seed", "epoch"]


def onemodel_table(files: list[str]) -> pd.DataFrame:
    """Every one-model test row (all classifiers and controls)."""
    rows = [row for path in files for row in json.loads(Path(path).read_text())]
    if not rows:
        return pd.DataFrame(columns=KEYS + ["epoch", "control", "classifier"])
    return pd.DataFrame(rows).sort_values(KEYS + ["epoch", "control", "classifier"],
                                          ignore_index=True)


def onemodel_samples(files: list[str]) -> pd.DataFrame:
    """The one-model tests' per-sample tables, labelled with their combination."""
    parts = []
    for path in files:
        meta = json.loads(Path(path).read_text())[0]
        samples = pd.read_parquet(path.removesuffix(".json") + ".samples.parquet")
        parts.append(samples.assign(**{k: meta[k] for k in KEYS + ["epoch", "classifier"]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


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
    """id, set, group of the two-model partition (definitions §4) from one-model samples that carry
    the reference's verdict."""
    t, r = samples["correct_target"].astype(bool), samples["correct_reference"].astype(bool)
    group = np.select([t & ~r, ~t & r, t & r], ["memorized", "misrepresented", "correlated"],
                      "unassociated")
    return samples[["id", "set"]].assign(group=group)


def sslmem_table(files: list[str], samples: pd.DataFrame, config: dict) -> pd.DataFrame:
    """SSLMem figures per model pair and epoch, against the two-model partition of the first
    crop mode, embedding, k and classifier where the one-model test ran."""
    from .sslmem import summarize
    rows = []
    for path in files:
        *_, method, backbone, size, seed, epoch = Path(path).with_suffix("").parts
        meta = {"method": method, "backbone": backbone,
                "train_size": int(size.removeprefix("n")), "seed": int(seed.removeprefix("s")),
                "epoch": int(epoch.removeprefix("epoch"))}  # .../{RUN}/epoch{e}.parquet
        partition = None
        if not samples.empty:
            first = samples[(samples["control"] == "none")
                            & (samples["crop_mode"] == config["crop"]["modes"][0])
                            & (samples["embedding"] == config["knn"]["embeddings"][0])
                            & (samples["k"] == config["knn"]["k"][0])
                            & (samples["classifier"] == config["onemodel"]["classifiers"][0])]
            first = first.loc[(first[list(meta)] == pd.Series(meta)).all(axis=1)]
            if not first.empty and "correct_reference" in first:
                partition = partition_of(first)
        rows.append({**meta, **summarize(pd.read_parquet(path), partition)})
    return pd.DataFrame(rows)


def with_sslmem(summary: pd.DataFrame, sslmem: pd.DataFrame) -> pd.DataFrame:
    """The summary with SSLMem's training and held-out means and AUC on the real test's
    rows of each model pair and epoch."""
    if sslmem.empty:
        return summary.reindex(columns=[*summary.columns, *SSLMEM_COLUMNS])
    figures = sslmem[RUN_KEYS + list(SSLMEM_COLUMNS.values())].rename(
        columns={v: k for k, v in SSLMEM_COLUMNS.items()}).assign(control="none")
    return summary.merge(figures, on=RUN_KEYS + ["control"], how="left")


def curves_table(score_files: list[str]) -> pd.DataFrame:
    parts = []
    for path in score_files:
        meta = json.loads(Path(path).read_text())[0]
        curves = pd.read_parquet(path.removesuffix(".json") + ".curves.parquet")
        parts.append(curves.assign(**{k: meta[k] for k in KEYS + ["epoch"]}))
    return pd.concat(parts, ignore_index=True)


PROBE_KEYS = ["method", "backbone", "train_size", "seed", "epoch"]
PROBE_COLUMNS = ["probe_train_acc", "probe_test_acc", "probe_gap"]


def probe_table(probe_files: list[str]) -> pd.DataFrame:
    """Linear-probe accuracies per model pair and epoch, averaged over models A and B."""
    if not probe_files:
        return pd.DataFrame(columns=PROBE_KEYS + PROBE_COLUMNS)
    rows = pd.DataFrame([json.loads(Path(p).read_text()) for p in probe_files])
    mean = rows.groupby(PROBE_KEYS)[["train_acc", "test_acc", "gap"]].mean().reset_index()
    return mean.rename(columns={"train_acc": "probe_train_acc", "test_acc": "probe_test_acc",
                                "gap": "probe_gap"})


def with_probe(summary: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """The summary with the probe columns of its model pair and epoch (definitions §9 allows more
    columns after the defined ones)."""
    merged = summary.merge(probes, on=PROBE_KEYS, how="left")
    return merged[list(summary.columns) + PROBE_COLUMNS]


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
    last = real[real["epoch"] == real.groupby(["method"])["epoch"].transform("max")]
    return seed_mean(last, ["method", "backbone", "train_size", "embedding", "k", "crop_mode",
                            "epoch"],
                     ["score", "score_ci_low", "score_ci_high", "memorized", "misrepresented",
                      *PROBE_COLUMNS])


def embedding_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Backbone vs projector: the same model pair's score from each embedding."""
    real = summary[summary["control"] == "none"]
    keys = ["method", "backbone", "train_size", "seed", "epoch", "k", "crop_mode"]
    wide = real.assign(embedding="score_" + real["embedding"]).pivot_table(
        index=keys, columns="embedding", values="score").reset_index()
    wide.columns.name = None
    if {"score_backbone", "score_projector"} <= set(wide.columns):
        wide["projector_minus_backbone"] = wide["score_projector"] - wide["score_backbone"]
    return wide


def rejects_table(crop_tables: list[str]) -> pd.DataFrame:
    """Attacked images without a valid crop, with the reason, per crop table."""
    parts = []
    for path in crop_tables:
        table = pd.read_parquet(path)
        bad = table.loc[~table["valid"], ["id", "set", "reason"]]
        parts.append(bad.assign(table=Path(path).parent.name + "/" + Path(path).stem))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def input_problems(rejects_path: str) -> pd.DataFrame:
    """Counts of the dataset's input problems by stage, kind and what was done about them."""
    rejects = pd.read_parquet(rejects_path)
    if rejects.empty:
        return pd.DataFrame(columns=["stage", "kind", "action", "count", "example"])
    return (rejects.groupby(["stage", "kind", "action"], sort=True)
            .agg(count=("path", "size"), example=("path", "first")).reset_index())


def stage_times(benchmarks_dir: str) -> pd.DataFrame:
    """Wall seconds per stage, summed over its jobs, from Snakemake's benchmark files."""
    rows = []
    for path in Path(benchmarks_dir).glob("*/**/*.tsv"):
        stage = path.relative_to(benchmarks_dir).parts[0]
        rows.append({"stage": stage, "s": float(pd.read_csv(path, sep="\t")["s"].iloc[0])})
    if not rows:
        return pd.DataFrame(columns=["stage", "jobs", "total_s", "max_s"])
    table = pd.DataFrame(rows).groupby("stage")["s"].agg(["count", "sum", "max"])
    return table.rename(columns={"count": "jobs", "sum": "total_s", "max": "max_s"}
                        ).reset_index().sort_values("total_s", ascending=False)


# ---------------------------------------------------------------- figures

def plot_curves(curves: pd.DataFrame, title: str) -> plt.Figure:
    """Figure 3 of the paper: accuracy on the top-p most confident crops, target vs
    reference, swap-averaged, one panel per control. Bands: over seeds (min to max of the
    seeds' curves) where there are several, else the bootstrap 95 % interval."""
    controls = list(dict.fromkeys(curves["control"]))
    fig, axes = plt.subplots(1, len(controls), figsize=(4.2 * len(controls), 3.4), squeeze=False)
    for ax, control in zip(axes[0], controls):
        rows = curves[curves["control"] == control]
        several = rows["seed"].nunique() > 1
        for name, style, label in (("acc_target", "o-", "target (trained on set)"),
                                   ("acc_reference", "s--", "reference")):
            per_p = rows.groupby("p")
            mean = per_p[name].mean()
            low, high = ((per_p[name].min(), per_p[name].max()) if several else
                         (per_p[f"{name}_low"].mean(), per_p[f"{name}_high"].mean()))
            line, = ax.plot(mean.index * 100, mean, style, ms=3, label=label)
            ax.fill_between(mean.index * 100, low, high, color=line.get_color(), alpha=0.18,
                            lw=0)
        band = f"band: {rows['seed'].nunique()} seeds" if several else "band: bootstrap 95%"
        ax.set(xlabel="top-p % most confident", ylabel="k-NN top-1 accuracy",
               title=f"{control} ({band})", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _series(ax, table: pd.DataFrame, x: str, y: str, label: str, colour=None, style="o-",
            low: str | None = None, high: str | None = None) -> None:
    """One line of a trend figure: mean over seeds, error bars from the seeds' spread where
    there are several, else from the interval columns."""
    grouped = table.groupby(x)
    mean = grouped[y].mean()
    if grouped.size().max() > 1:
        err = np.vstack([mean - grouped[y].min(), grouped[y].max() - mean])
    elif low and high:
        err = np.vstack([mean - grouped[low].mean(), grouped[high].mean() - mean])
    else:
        err = None
    ax.errorbar(mean.index, mean, yerr=err, fmt=style, ms=4, capsize=2, label=label,
                color=colour)


def _trend_rows(summary: pd.DataFrame, along: str) -> pd.DataFrame:
    """Rows for a trend along epochs (each size) or sizes (at each pair's last epoch)."""
    trained = summary[summary["control"] != "untrained"]
    if along == "epoch":
        return summary
    return trained[trained["epoch"] == trained.groupby(
        ["method", "backbone", "train_size", "seed"])["epoch"].transform("max")]


def plot_score_trends(summary: pd.DataFrame, along: str) -> plt.Figure:
    """Figure 4 of the paper: déjà vu score (with the held-out control) and the linear-probe
    train-test gap along training epochs or train-set size."""
    rows = _trend_rows(summary, along)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for (method, backbone, embedding, other), group in rows.groupby(
            ["method", "backbone", "embedding", _lines_by(along)], sort=True):
        tag = f"{method} {backbone} {embedding}" + (f" n{other}" if along == "epoch" else "")
        real = group[group["control"].isin(["none", "untrained"])]
        _series(left, real, along, "score", tag, low="score_ci_low", high="score_ci_high")
        held = group[group["control"] == "heldout"]
        if len(held):
            _series(left, held, along, "score", f"{tag} held-out", style="x:",
                    colour=left.lines[-1].get_color())
    left.axhline(0, color="k", lw=0.6)
    left.set(xlabel=_axis_name(along), ylabel="déjà vu score at p", title="déjà vu score")
    probe = rows[(rows["embedding"] == rows["embedding"].iloc[0])
                 & rows["control"].isin(["none", "untrained"])].dropna(subset=["probe_gap"])
    probe = probe.drop_duplicates(PROBE_KEYS + ["k", "crop_mode"])
    for (method, backbone, other), group in probe.groupby(
            ["method", "backbone", _lines_by(along)]):
        tag = f"{method} {backbone}" + (f" n{other}" if along == "epoch" else "")
        _series(right, group, along, "probe_gap", tag)
    right.axhline(0, color="k", lw=0.6)
    right.set(xlabel=_axis_name(along), ylabel="train acc - test acc",
              title="linear probe train-test gap")
    _finish(fig, [left, right], along)
    return fig


def plot_share_trends(summary: pd.DataFrame, along: str) -> plt.Figure:
    """Figure 5 of the paper: memorized, misrepresented and correlated shares along epochs
    or train-set size (real test, one panel per method and embedding)."""
    rows = _trend_rows(summary, along)
    rows = rows[rows["control"].isin(["none", "untrained"])]
    panels = list(rows.groupby(["method", "backbone", "embedding"], sort=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.3), squeeze=False)
    for ax, ((method, backbone, embedding), group) in zip(axes[0], panels):
        for share, colour in zip(SHARES[:3], ["#c0392b", "#2980b9", "#7f8c8d"]):
            for other, part in group.groupby(_lines_by(along)):
                style = "o-" if other == group[_lines_by(along)].max() else "s--"
                tag = share + (f" n{other}" if along == "epoch" else "")
                _series(ax, part, along, share, tag, colour=colour, style=style)
        ax.set(xlabel=_axis_name(along), ylabel="share of attacked images", ylim=(0, 1),
               title=f"{method} {backbone} {embedding}")
    _finish(fig, axes[0], along)
    return fig


def _lines_by(along: str) -> str:
    """What separates the lines of a trend panel: the size along epochs, k along sizes."""
    return "train_size" if along == "epoch" else "k"


def _finish(fig: plt.Figure, axes, along: str) -> None:
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        if along == "train_size":
            ax.set_xscale("log")
    fig.tight_layout()


def _axis_name(along: str) -> str:
    return {"epoch": "training epochs", "train_size": "train-set size (images per class)"}[along]


def plot_partition(summary: pd.DataFrame) -> plt.Figure:
    """Stacked shares of memorized / misrepresented / correlated / unassociated per row."""
    labels = [f"{r.method} {r.backbone} n{r.train_size} s{r.seed} {r.embedding} {r.crop_mode} "
              f"k{r.k} ep{r.epoch} {r.control}" for r in summary.itertuples()]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(summary) + 1.2))
    left = np.zeros(len(summary))
    for share, colour in zip(SHARES, ["#c0392b", "#2980b9", "#7f8c8d", "#d5d8dc"]):
        ax.barh(labels, summary[share], left=left, color=colour, label=share)
        left += summary[share].to_numpy()
    ax.set(xlabel="share of attacked images (swap-averaged)", xlim=(0, 1))
    ax.legend(ncol=4, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


def plot_examples(crops: np.ndarray, originals: np.ndarray, boxes: list, neighbours_t: list,
                  neighbours_r: list, captions: list[str], n_show: int = 5) -> plt.Figure:
    """Per example: crop, original with its box, then target and reference neighbours."""
    n = len(crops)
    fig, axes = plt.subplots(max(n, 1), 2 + 2 * n_show, figsize=(1.2 * (2 + 2 * n_show),
                                                                   1.35 * max(n, 1)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        axes[i, 0].imshow(crops[i])
        axes[i, 0].set_title(captions[i], fontsize=6)
        axes[i, 1].imshow(originals[i])
        x0, y0, x1, y1 = boxes[i]
        axes[i, 1].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                           ec="yellow", lw=1))
        for j in range(n_show):
            for offset, (images, labels, name) in enumerate((neighbours_t[i], neighbours_r[i])):
                ax = axes[i, 2 + offset * n_show + j]
                ax.imshow(images[j])
                ax.set_title(f"{name} {labels[j]}", fontsize=5)
    fig.tight_layout()
    return fig


def plot_memorization(samples: pd.DataFrame, title: str) -> plt.Figure:
    """Histograms of the one-model memorization confidence H(g) - H(p_T) of the images the
    target's k-NN labels right and the classifier wrong, one panel per classifier, the real
    test against the held-out control."""
    classifiers = list(dict.fromkeys(samples["classifier"]))
    fig, axes = plt.subplots(1, len(classifiers), figsize=(4.2 * len(classifiers), 3.2),
                             squeeze=False)
    for ax, classifier in zip(axes[0], classifiers):
        rows = samples[(samples["classifier"] == classifier) & samples["memorization"].notna()]
        values = rows["memorization"].to_numpy()
        bins = np.linspace(min(0.0, values.min(initial=0.0)), max(values.max(initial=1.0), 1e-6),
                           25)
        for control, colour in (("none", "#c0392b"), ("heldout", "#7f8c8d")):
            chosen = rows.loc[rows["control"] == control, "memorization"]
            total = (samples["classifier"] == classifier) & (samples["control"] == control)
            if len(chosen):
                ax.hist(chosen, bins=bins, alpha=0.55, color=colour,
                        label=f"{'attacked set' if control == 'none' else 'held-out'}: "
                              f"{len(chosen)} of {int(total.sum())}")
        ax.set(xlabel="H(classifier) − H(k-NN target)", ylabel="images",
               title=f"classifier: {classifier}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_sslmem(table: pd.DataFrame, figures: dict, title: str) -> plt.Figure:
    """SSLMem: the distribution of m on training and on held-out images, and (where the
    two-model partition is known) its mean per partition group."""
    groups = [g for g in SHARES if figures.get(f"mean_m_{g}") is not None]
    fig, axes = plt.subplots(1, 2 if groups else 1, figsize=(9 if groups else 4.6, 3.2),
                             squeeze=False)
    ax = axes[0][0]
    bins = np.linspace(table["m"].min(), table["m"].max() + 1e-9, 30)
    for name, chosen, colour in (("training (A, B)", table["set"].isin(["A", "B"]), "#c0392b"),
                                 ("held-out", table["set"] == "heldout", "#7f8c8d")):
        if chosen.any():
            ax.hist(table.loc[chosen, "m"], bins=bins, alpha=0.55, color=colour, density=True,
                    label=f"{name}: mean {table.loc[chosen, 'm'].mean():+.4f}")
    ax.axvline(0, color="k", lw=0.6)
    ax.set(xlabel="m(x) = d_reference − d_target", ylabel="density", title="SSLMem")
    ax.legend(fontsize=7)
    if groups:
        ax = axes[0][1]
        ax.bar(groups, [figures[f"mean_m_{g}"] for g in groups],
               color=["#c0392b", "#2980b9", "#7f8c8d", "#d5d8dc"][:len(groups)])
        ax.axhline(0, color="k", lw=0.6)
        ax.set(ylabel="mean m", title="by déjà vu partition (training images)")
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_png(fig: plt.Figure, path: Path) -> str:
    """Save the figure as `path` (PNG) and beside it as SVG; return the PNG base64-encoded
    for the HTML page."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    fig.savefig(path.with_suffix(".svg"), format="svg", bbox_inches="tight")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode()


# ---------------------------------------------------------------- examples

def example_panel(knn_target: str, knn_reference: str, crops_store: str, images_path: str,
                  index_path: str, n: int = 6):
    """The most confident memorized crops of set A (target right, reference wrong)."""
    t = pd.read_parquet(knn_target).set_index("id")
    r = pd.read_parquet(knn_reference).set_index("id")
    a = t[t["set"] == "A"].join(r[["correct", "neighbors"]], rsuffix="_ref")
    chosen = a[a["correct"] & ~a["correct_ref"]].sort_values("confidence", ascending=False)[:n]
    images, crops = open_images(images_path), open_images(crops_store)
    index = read_index(index_path)
    label_of = index["label"].to_numpy()

    def neighbours(rows, name):
        rows = np.asarray(rows[:5])
        return images.get_orthogonal_selection((np.sort(rows),))[np.argsort(np.argsort(rows))], \
            label_of[rows], name

    return dict(
        crops=np.stack([crops[int(c)] for c in chosen["crop_row"]]) if len(chosen) else [],
        originals=[_region(images[int(row)], index.loc[int(row)]) for row in chosen["row"]],
        boxes=[object_box(index.loc[int(row), "boxes"]) for row in chosen["row"]],
        neighbours_t=[neighbours(nb, "T") for nb in chosen["neighbors"]],
        neighbours_r=[neighbours(nb, "R") for nb in chosen["neighbors_ref"]],
        captions=[f"{i} label {lab}" for i, lab in zip(chosen.index, chosen["label"])],
    )


def _region(image: np.ndarray, entry) -> np.ndarray:
    """The image's own region of its stored canvas."""
    return image[:int(entry["height"]), :int(entry["width"])]


# ---------------------------------------------------------------- RCDM reconstructions

def rcdm_quality_table(quality_files: list[str]) -> pd.DataFrame:
    """One row per decoded run: self-reconstruction quality (mean of the two decoders) and
    how often attack samples show the true class, target decoder vs reference decoder."""
    rows = []
    for path in quality_files:
        quality = json.loads(Path(path).read_text())
        decoders = list(quality["self"].values())
        row = dict(quality["run"])
        for key, name in (("top1_retrieval", "self_top1"), ("top1_chance", "self_top1_chance"),
                          ("mean_rank", "self_mean_rank"), ("class_recovery", "self_class"),
                          ("class_recovery_originals", "self_class_originals"),
                          ("class_chance", "class_chance")):
            row[name] = float(np.mean([d[key] for d in decoders]))
        for group in ("memorized", "correlated"):
            attack = quality["attack"].get(group, {})
            row[f"{group}_images"] = attack.get("images", 0)
            row[f"{group}_target"] = attack.get("target", np.nan)
            row[f"{group}_reference"] = attack.get("reference", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def reconstruction_panel(table_path: str, samples_path: str, images_path: str,
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
    images, index = open_images(images_path), read_index(index_path)
    examples = []
    for _, ex in picked.iterrows():
        mine = attack[attack["id"] == ex["id"]].sort_values("sample")
        row = int(ex["row"])
        examples.append(dict(
            group=ex["group"], label=int(ex["label"]),
            crop=stored["crops"][int(ex["crop_image"])],
            original=_region(images[row], index.loc[row]),
            box=object_box(index.loc[row, "boxes"]),
            **{role: (stored["samples"].get_orthogonal_selection(
                (np.sort(part["image"].to_numpy()),)), part["recovered"].to_numpy())
               for role, part in mine.groupby("decoder")}))
    return examples


def plot_reconstructions(examples: list[dict], title: str) -> plt.Figure:
    """Per attacked image: crop, original with its box, target samples, reference samples;
    a sample's frame is green where the judges see the true class."""
    n_samples = max((len(e["target"][0]) for e in examples), default=1)
    cols = 2 + 2 * n_samples
    fig, axes = plt.subplots(max(1, len(examples)), cols, figsize=(1.1 * cols,
                                                                   1.25 * max(1, len(examples))),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for i, ex in enumerate(examples):
        axes[i, 0].imshow(ex["crop"])
        axes[i, 0].set_ylabel(f"{ex['group']}\nlabel {ex['label']}", fontsize=6)
        axes[i, 1].imshow(ex["original"])
        x0, y0, x1, y1 = ex["box"]
        axes[i, 1].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                           ec="yellow", lw=1))
        for offset, role in enumerate(("target", "reference")):
            drawn, recovered = ex[role]
            for j in range(len(drawn)):
                ax = axes[i, 2 + offset * n_samples + j]
                ax.imshow(drawn[j])
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color("tab:green" if recovered[j] >= 0.5 else "tab:red")
                    spine.set_linewidth(1.5)
    heads = ["crop", "image"] + [f"T {j}" for j in range(n_samples)] + [
        f"R {j}" for j in range(n_samples)]
    for ax, head in zip(axes[0], heads):
        ax.set_title(head, fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_self_reconstructions(table_path: str, samples_path: str, images_path: str,
                              index_path: str, n: int = 10) -> plt.Figure:
    """Public test images (top) and their reconstructions from their own embedding by
    decoder A and decoder B."""
    import zarr
    table = pd.read_parquet(table_path)
    stored = zarr.open_group(samples_path, mode="r")["samples"]
    own = table[table["kind"] == "self"]
    shown = own.drop_duplicates("id")
    shown = shown.iloc[np.linspace(0, len(shown) - 1, min(n, len(shown))).astype(int)]
    images, index = open_images(images_path), read_index(index_path)
    fig, axes = plt.subplots(3, len(shown), figsize=(1.0 * len(shown), 3.3), squeeze=False)
    for j, (_, ex) in enumerate(shown.iterrows()):
        row = int(ex["row"])
        axes[0, j].imshow(_region(images[row], index.loc[row]))
        for i, decoder in enumerate(("A", "B"), start=1):
            mine = own[(own["id"] == ex["id"]) & (own["decoder"] == decoder)]
            axes[i, j].imshow(stored[int(mine["image"].iloc[0])])
    for (i, j), ax in np.ndenumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
    for i, name in enumerate(("original", "decoder A", "decoder B")):
        axes[i, 0].set_ylabel(name, fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- provenance and page

def provenance(config: dict) -> dict:
    packages = {}
    for name in ("dejavu", "torch", "torchvision", "snakemake", "faiss-cpu", "zarr", "numpy",
                 "pandas", "pyarrow", "lightly"):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    return {"git_commit": commit, "packages": packages, "config": config}


def _table_html(table: pd.DataFrame, floats: str = "{:.3f}") -> str:
    if table.empty:
        return "<p><i>none</i></p>"
    return table.to_html(index=False, float_format=floats.format, border=0, classes="t")


def render_html(sections: list[tuple[str, str]]) -> str:
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "table.t{border-collapse:collapse;font-size:12px}"
             "table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd}"
             "img{max-width:100%}pre{font-size:11px;background:#f6f6f6;padding:.5em}")
    body = "\n".join(f"<h2>{html.escape(title)}</h2>\n{content}" for title, content in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>dejavu report</title>"
            f"<style>{style}</style></head><body><h1>Déjà vu memorization report</h1>"
            f"{body}</body></html>")


def _img(b64: str) -> str:
    return f"<img src='data:image/png;base64,{b64}'>"


def run(inputs: dict, outputs: dict, *, config: dict, benchmarks: str) -> None:
    figures = Path(outputs["figures"])
    figures.mkdir(parents=True, exist_ok=True)
    onemodel = onemodel_table(_as_list(inputs.get("onemodel", [])))
    samples = onemodel_samples(_as_list(inputs.get("onemodel", [])))
    sslmem = sslmem_table(_as_list(inputs.get("sslmem", [])), samples, config)
    first_classifier = (config["onemodel"]["classifiers"][0]
                        if config["onemodel"]["enabled"] else None)
    summary = with_probe(summary_table(_as_list(inputs.get("scores", []))),
                         probe_table(_as_list(inputs.get("probes", []))))
    summary = with_sslmem(with_onemodel(summary, onemodel, first_classifier), sslmem)
    summary.to_csv(outputs["summary"], index=False)
    paired = summary[summary["score"].notna()]  # the two-model test ran (not external)
    sections = two_model_sections(inputs, config, paired, figures)
    sections += onemodel_sections(onemodel, samples, paired, figures, config)
    sections += sslmem_sections(sslmem, _as_list(inputs.get("sslmem", [])), figures)
    sections += rcdm_sections(inputs, figures)
    sizes = pd.concat([pd.read_csv(p).assign(train_size=Path(p).parent.name)
                       for p in inputs["sizes"]])
    sections.append(("Split sizes per class", _table_html(sizes, "{:.0f}")))
    rejects = rejects_table(list(inputs["crop_tables"]))
    counts = (rejects.groupby(["table", "reason"]).size().reset_index(name="images")
              if not rejects.empty else rejects)
    sections.append(("Attacked images without a valid crop", _table_html(counts)))
    problems = input_problems(inputs["dataset_rejects"])
    skipped = int(problems.loc[problems["action"] == "image skipped", "count"].sum())
    sections.append(("Dataset input problems", (
        f"<p>{skipped} files skipped; every problem is listed with its reason in "
        f"<code>{html.escape(inputs['dataset_rejects'])}</code> (set "
        f"<code>dataset.strict: true</code> to fail at the first one instead).</p>"
        + _table_html(problems))))
    sections.append(("Wall time per stage (s)", _table_html(stage_times(benchmarks), "{:.1f}")))
    sections.append(("Provenance", "<pre>" + html.escape(yaml.safe_dump(provenance(config),
                                                                        sort_keys=False))
                     + "</pre>"))
    Path(outputs["html"]).write_text(render_html(sections))


def two_model_sections(inputs: dict, config: dict, paired: pd.DataFrame,
                       figures: Path) -> list[tuple[str, str]]:
    """Scores, methods, embeddings, trends, Figure 3 curves, partition and examples of the
    two-model test (none when only external models were tested)."""
    if paired.empty:
        return [("Scores", "<p>No model pair was trained (train.methods is empty): only the "
                 "one-model test ran.</p>")]
    curves = curves_table(_as_list(inputs["scores"]))
    intro = _score_intro(config)
    if "heldout" not in set(paired["control"]):
        intro += ("<p><b>The held-out control was skipped</b>: no annotated image was held "
                  f"out (split.heldout_fraction = {config['split']['heldout_fraction']}), as "
                  "on ImageNet, where box images are scarce (definitions §1).</p>")
    sections = [("Scores", intro + _table_html(paired[[
        "method", "backbone", "train_size", "seed", "epoch", "embedding", "k", "crop_mode",
        "control", "n_attacked", "acc_target", "acc_reference", "score", "score_ci_low",
        "score_ci_high", *SHARES, "probe_gap"]]))]
    methods = method_table(paired)
    methods.to_csv(figures / "method_comparison.csv", index=False)
    sections.append(("Methods compared at the last epoch (score at p with its bootstrap 95% "
                     "interval, mean over seeds; linear probe on the backbone)",
                     _table_html(methods)))
    embeddings = embedding_table(paired)
    embeddings.to_csv(figures / "backbone_vs_projector.csv", index=False)
    sections.append(("Backbone vs projector (the same models' score from each embedding)",
                     _table_html(embeddings)))
    for along, name in (("epoch", "epochs"), ("train_size", "size")):
        points = paired[along].nunique()
        if points < 2:
            sections.append((f"Trends along {_axis_name(along)} (Figures 4, 5)",
                             f"<p>Only one value of {along} is configured; sweep it "
                             f"({'train.checkpoints' if along == 'epoch' else 'split.npc'}) "
                             f"to see the trend.</p>"))
            continue
        sections.append((f"Déjà vu score and linear-probe gap vs {_axis_name(along)} "
                         "(Figure 4)", _img(figure_png(plot_score_trends(paired, along),
                                                       figures / f"score_vs_{name}.png"))))
        sections.append((f"Memorized, misrepresented, correlated vs {_axis_name(along)} "
                         "(Figure 5)", _img(figure_png(plot_share_trends(paired, along),
                                                       figures / f"shares_vs_{name}.png"))))
    figure3_keys = [k for k in KEYS if k != "seed"]
    for keys, group in curves.groupby(figure3_keys, sort=False):
        last = group.groupby("seed")["epoch"].transform("max")
        shown = group[(group["epoch"] == last) | (group["control"] == "untrained")]
        name = "curves_" + "_".join(str(k) for k in keys)
        title = ", ".join(f"{k}={v}" for k, v in zip(figure3_keys, keys))
        png = figure_png(plot_curves(shown, textwrap.fill(f"{title}, epoch {last.max()}", 110)),
                         figures / f"{name}.png")
        sections.append((f"Accuracy vs confidence (Figure 3): {title}", _img(png)))
    last_rows = paired[paired["epoch"] == paired.groupby(
        ["method", "backbone", "train_size", "seed"])["epoch"].transform("max")]
    sections.append(("Sample partition at the last epoch",
                     _img(figure_png(plot_partition(last_rows), figures / "partition.png"))))
    panel = example_panel(inputs["knn_target"], inputs["knn_reference"], inputs["crops_store"],
                          inputs["images"], inputs["index"])
    sections.append(("Most confident memorized crops (set A): crop, image, 5 nearest public "
                     "images under the target (T) and the reference (R) with their labels",
                     _img(figure_png(plot_examples(**panel), figures / "examples.png"))
                     if len(panel["crops"]) else "<p>No memorized crop.</p>"))
    return sections


def onemodel_sections(onemodel: pd.DataFrame, samples: pd.DataFrame, paired: pd.DataFrame,
                      figures: Path, config: dict) -> list[tuple[str, str]]:
    """The one-model test: every row, the classifiers against the reference k-NN and the
    two-model test, and the memorization-confidence histograms."""
    if onemodel.empty:
        return []
    onemodel.to_csv(figures / "onemodel.csv", index=False)
    p = config["score"]["p"]
    intro = (f"<p>A correlation classifier g predicts the class from the background crop "
             f"alone, trained on the other training set's crops; one-model score = "
             f"acc_KNN_target − acc_g on each one's top {p:.0%} most confident crops (own "
             f"confidence), swap-averaged where the workflow trained the pair, with a "
             f"bootstrap 95% interval. <i>memorized_one_model</i>: target right, g wrong; "
             f"<i>memorized_two_model</i>: target right, reference wrong; overlap = both / "
             f"either. The held-out control attacks images neither the target nor g saw.</p>")
    table = onemodel[[c for c in (
        "method", "backbone", "train_size", "seed", "epoch", "embedding", "k", "crop_mode",
        "control", "classifier", "n_attacked", "acc_target", "acc_classifier", "score",
        "score_ci_low", "score_ci_high", "acc_target_all", "acc_classifier_all",
        "memorized_one_model", "memorized_two_model", "memorized_overlap",
        "memorization_mean") if c in onemodel]]
    sections = [("One-model test (definitions §5)", intro + _table_html(table))]
    if not paired.empty:
        on = KEYS + ["epoch", "control"]
        both = onemodel.merge(paired[on + ["acc_reference_all", "score"]], on=on,
                              suffixes=("_onemodel", "_two_model"))
        both = both[both["control"] == "none"]
        comparison = both[["method", "backbone", "train_size", "seed", "epoch", "embedding",
                           "classifier", "acc_classifier_all", "acc_reference_all",
                           "score_onemodel", "score_two_model", "memorized_one_model",
                           "memorized_two_model", "memorized_both", "memorized_overlap"]]
        comparison.to_csv(figures / "onemodel_vs_two_model.csv", index=False)
        sections.append(("The correlation classifier against the reference model's k-NN, "
                         "and the two tests' calls", _table_html(comparison)))
    last = samples[samples["epoch"] == samples.groupby(
        ["method", "backbone", "train_size", "seed"])["epoch"].transform("max")]
    first = last[(last["crop_mode"] == config["crop"]["modes"][0])
                 & (last["embedding"] == config["knn"]["embeddings"][0])
                 & (last["k"] == config["knn"]["k"][0])]
    for keys, group in first.groupby(["method", "backbone", "train_size", "seed", "epoch"],
                                     sort=False):
        name = "memorization_{}_{}_n{}_s{}".format(*keys)
        title = (f"{keys[0]}, {keys[1]}, {keys[2]} per class, seed {keys[3]}, epoch {keys[4]}, "
                 f"{config['knn']['embeddings'][0]}, k={config['knn']['k'][0]}")
        sections.append((f"One-model memorization confidence: {title}",
                         _img(figure_png(plot_memorization(group, title),
                                         figures / f"{name}.png"))))
    return sections


def sslmem_sections(sslmem: pd.DataFrame, files: list[str],
                    figures: Path) -> list[tuple[str, str]]:
    """SSLMem per model pair and epoch, and its distribution at each pair's last epoch."""
    if sslmem.empty:
        return []
    sslmem.to_csv(figures / "sslmem.csv", index=False)
    intro = ("<p>m(x) = d_reference(x) − d_target(x), d = mean distance between the "
             "L2-normalised embedding of an attacked image and of augmented views of it "
             "(definitions §6). Positive on training images: the target is more invariant on what "
             "it saw. AUC = chance that a training image's m exceeds a held-out one's (0.5: no "
             "signal). By partition: mean m of the training images the two-model test calls "
             "memorized, misrepresented, correlated, unassociated; corr = point-biserial "
             "correlation of m with being memorized.</p>")
    sections = [("SSLMem (definitions §6)", intro + _table_html(sslmem))]
    last = sslmem["epoch"] == sslmem.groupby(
        ["method", "backbone", "train_size", "seed"])["epoch"].transform("max")
    for (_, row), path in zip(sslmem.iterrows(), files):
        if not last.loc[_]:
            continue
        name = f"sslmem_{row['method']}_{row['backbone']}_n{row['train_size']}_s{row['seed']}"
        title = (f"{row['method']}, {row['backbone']}, {row['train_size']} per class, seed "
                 f"{row['seed']}, epoch {row['epoch']}")
        sections.append((f"SSLMem distribution: {title}", _img(figure_png(
            plot_sslmem(pd.read_parquet(path), row.to_dict(), title), figures / f"{name}.png"))))
    return sections


def rcdm_sections(inputs: dict, figures: Path) -> list[tuple[str, str]]:
    """Reconstruction panels and the decoders' quality table (none when RCDM is off)."""
    files = [_as_list(inputs.get(key, [])) for key in ("rcdm_quality", "rcdm_tables",
                                                        "rcdm_samples")]
    if not files[0]:
        return []
    quality = rcdm_quality_table(files[0])
    quality.to_csv(figures / "rcdm_quality.csv", index=False)
    sections = [("RCDM decoders (definitions §7): self-reconstruction and what the attack's "
                 "samples show", RCDM_INTRO + _table_html(quality))]
    for (_, run), table, samples in zip(quality.iterrows(), files[1], files[2]):
        name = f"{run['method']}_{run['backbone']}_n{run['train_size']}_s{run['seed']}"
        title = (f"{run['method']}, {run['backbone']}, {run['train_size']} per class, seed "
                 f"{run['seed']}, epoch {run['epoch']}")
        examples = reconstruction_panel(table, samples, inputs["images"], inputs["index"])
        sections.append((f"Reconstructions from background crops (set A attacked): {title}",
                         _img(figure_png(plot_reconstructions(examples, title),
                                         figures / f"rcdm_{name}.png"))
                         if examples else "<p>No memorized or correlated crop to show.</p>"))
        sections.append((f"Decoding public test images from their own embedding: {title}",
                         _img(figure_png(plot_self_reconstructions(
                             table, samples, inputs["images"], inputs["index"]),
                             figures / f"rcdm_self_{name}.png"))))
    return sections


RCDM_INTRO = (
    "<p>Each SSL model gets a diffusion decoder trained on the public set. <b>Self</b>: public "
    "test images decoded from their own embedding; top-1 retrieval = share of samples whose "
    "embedding is nearest their own conditioning embedding (chance 1/n); mean rank as a "
    "fraction of n-1 (chance 0.5); class = the model's k-NN on the public set reads the true "
    "class from the sample (originals: from the original at the decoder's resolution). "
    "<b>Attack</b>: for the target's most confident crops, the mean embedding of the crop's "
    "k nearest public images is decoded with the target's decoder and with the reference's; "
    "the share of samples whose class both models' k-NN read as the true one. Memorized "
    "crops should show the object with the target decoder only; correlated ones with "
    "both.</p>")


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _score_intro(config: dict) -> str:
    p = config["score"]["p"]
    return (f"<p>Déjà vu score = acc_target − acc_reference on each model's top {p:.0%} most "
            "confident crops, swap-averaged over (A attacked, target A) and (B attacked, target "
            "B), with a bootstrap 95% interval. Controls: <b>heldout</b> attacks images neither "
            "model saw; <b>untrained</b> uses the randomly initialised models. Both should read "
            "about zero; a real score is clearly above them, with memorized &gt; "
            "misrepresented.</p>")
