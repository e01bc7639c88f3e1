"""The figures of variants and layers (definitions §10, §11): the privacy-utility frontier
and déjà vu and LayerMem along depth. Tables in, figures out, for any valid config, as in
`figures` (whose helpers they use); `tests/test_report.py` draws each from edge-case tables.
"""

from __future__ import annotations

import pandas as pd

from ..core.layers import OUTPUTS, depth
from .tables import RUN_KEYS
# pyplot on the Agg backend figures sets
from .figures import series, in_palette, legend, model_name, panels, plt
from .mitigation import pareto


@in_palette
def plot_frontier(real: pd.DataFrame) -> plt.Figure:
    """Déjà vu score at p (with its interval) against utility, one point per evaluated run
    (method, variant, epoch, size, seed), the Pareto-optimal ones ringed and joined (the
    `frontier` column's rule): left the linear probe's test accuracy, right k-NN's. One row
    of panels per output embedding (backbone, projector; the inner layers where neither was
    attacked): a frontier compares runs at one embedding (definitions §10)."""
    utilities = [u for u in ("probe_test_acc", "knn_test_acc") if real[u].notna().any()]
    names = sorted(real["embedding"].unique(), key=depth)
    shown = [n for n in names if n in OUTPUTS] or names
    columns, rows_of_panels = max(len(utilities), 1), max(len(shown), 1)
    fig, axes = plt.subplots(rows_of_panels, columns, squeeze=False,
                             figsize=(4.6 * columns, 3.8 * rows_of_panels))
    for panels_row, name in zip(axes, shown):
        for ax, utility in zip(panels_row, utilities):
            frontier_panel(ax, real[real["embedding"] == name].dropna(subset=[utility]),
                           utility, name)
            if name == shown[-1]:  # the same runs in every row: one legend, at the bottom
                legend(ax, 6)
    fig.tight_layout()
    return fig


def frontier_panel(ax, rows: pd.DataFrame, utility: str, embedding: str) -> None:
    """One panel of the frontier: the runs at one embedding, score against `utility`."""
    for (method, variant), group in rows.groupby(["method", "variant"], sort=True):
        ax.errorbar(group[utility], group["score"],
                    yerr=[group["score"] - group["score_ci_low"],
                          group["score_ci_high"] - group["score"]],
                    fmt="o" if variant == "default" else "s", ms=4, capsize=2, alpha=0.8,
                    label=f"{method}" + ("" if variant == "default" else f" [{variant}]"))
    front = rows[pareto(rows[utility], rows["score"])].sort_values(utility)
    ax.plot(front[utility], front["score"], "k--", lw=0.8)
    ax.scatter(front[utility], front["score"], s=90, facecolors="none", edgecolors="k",
               label="Pareto-optimal")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xlabel={"probe_test_acc": "linear-probe test accuracy",
                   "knn_test_acc": "k-NN test accuracy"}[utility],
           ylabel=f"déjà vu score at p ({embedding})",
           title=f"privacy-utility frontier: {embedding}")
    ax.grid(alpha=0.3)


@in_palette
def plot_depth(rows: pd.DataFrame) -> plt.Figure:
    """Déjà vu along depth (definitions §11): per model pair (method, backbone, variant,
    size, seed), the score at p with its interval at each embedding in depth order, the
    held-out control dashed; right, where SSLMem ran, LayerMem (mean m of the training
    images, solid, and of the held-out ones, dashed) at the same embeddings. `rows`: one
    crop mode, k and epoch per pair."""
    order = sorted(rows["embedding"].unique(), key=depth)
    at = {name: i for i, name in enumerate(order)}
    with_layermem = "layermem_train" in rows and rows["layermem_train"].notna().any()
    fig, axes = panels(1 + with_layermem, 4.8, 3.6)
    left = axes[0][0]
    pairs = rows.groupby(["method", "backbone", "variant", "train_size", "seed"], sort=True)
    for (method, backbone, variant, size, seed), group in pairs:
        tag = model_name(method, backbone, variant) + (
            f" n{size} s{seed}" if pairs.ngroups > 1 else "")
        real = group[group["control"] == "none"].sort_values("embedding", key=lambda e: e.map(at))
        x = real["embedding"].map(at)
        left.errorbar(x, real["score"], yerr=[real["score"] - real["score_ci_low"],
                                              real["score_ci_high"] - real["score"]],
                      fmt="o-", ms=4, capsize=2, label=tag)
        colour = left.lines[-1].get_color()
        held = group[group["control"] == "heldout"].sort_values(
            "embedding", key=lambda e: e.map(at))
        if len(held):
            left.plot(held["embedding"].map(at), held["score"], "x:", color=colour,
                      label=f"{tag} held-out")
        if with_layermem:
            right = axes[0][1]
            right.plot(x, real["layermem_train"], "o-", color=colour, label=f"{tag} training")
            right.plot(x, real["layermem_heldout"], "x:", color=colour, label=f"{tag} held-out")
    left.axhline(0, color="k", lw=0.6)
    left.set(ylabel="déjà vu score at p", title="déjà vu score along depth")
    if with_layermem:
        axes[0][1].set(ylabel="mean SSLMem m", title="LayerMem along depth")
    for ax in axes[0]:
        ax.set_xticks(range(len(order)), order, rotation=30, fontsize=7)
        ax.set(xlabel="embedding (input to output)")
        ax.grid(alpha=0.3)
        legend(ax, 6)
    fig.tight_layout()
    return fig


@in_palette
def plot_sweep(rows: pd.DataFrame, setting: str) -> plt.Figure:
    """The paper's hyperparameter figures: déjà vu score at p (solid, mean over seeds with
    their spread, else the bootstrap interval) and its held-out control (dotted) against
    the swept value, one line per embedding, and the linear probe's test accuracy on the
    right axis (grey); one panel per method (`tables.sweep_rows`)."""
    methods = sorted(rows["method"].unique())
    fig, axes = panels(len(methods), 4.4, 3.6)
    numeric = pd.api.types.is_numeric_dtype(rows["x"])
    if not numeric:  # list settings: evenly spaced, in the order first seen
        order = {v: i for i, v in enumerate(dict.fromkeys(rows["x"]))}
        rows = rows.assign(x=rows["x"].map(order))
    for ax, method in zip(axes[0], methods):
        part = rows[rows["method"] == method]
        for embedding, group in part.groupby("embedding", sort=False):
            real = group[group["control"] == "none"]
            series(ax, real, "x", "score", embedding, low="score_ci_low", high="score_ci_high")
            held = group[group["control"] == "heldout"]
            if len(held):
                series(ax, held, "x", "score", f"{embedding} held-out", style="x:",
                        colour=ax.lines[-1].get_color())
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel=setting, ylabel="déjà vu score at p", title=method)
        probe = part[part["control"] == "none"].dropna(subset=["probe_test_acc"])
        twins = []
        if len(probe):
            right = ax.twinx()
            twins.append(right)
            series(right, probe.drop_duplicates(RUN_KEYS), "x", "probe_test_acc",
                    "linear probe", colour="#999999", style="s--")
            right.set_ylabel("linear-probe test accuracy")
        if numeric and len(part) and part["x"].min() > 0 and part["x"].max() >= 20 * part["x"].min():
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(list(order.values()), list(order), fontsize=6)
        ax.grid(alpha=0.3)
        legend(ax, 6, *twins)
    fig.tight_layout()
    return fig
