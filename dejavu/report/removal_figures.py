"""The report's section on the removal experiment (dejavu/data/removal.py, definitions §12):
downstream accuracy against the number of training images removed, the most memorized
against random ones, one panel per method and backbone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..data import removal
from . import figures as fig

STYLE = {"memorized": ("o-", "#c0392b"), "random": ("s--", "#2c7fb8")}
METRICS = {"probe_test_acc": "linear probe", "knn_test_acc": "k-NN"}


def plot_removal(results: pd.DataFrame):
    """Test accuracy (mean over seeds, error bars one standard error) against the images
    removed, a panel per method, backbone and dataset (the run's own public test split,
    then each second one); solid: the linear probe, faint: the k-NN."""
    own = "public test"  # the name of a table's rows from before second datasets
    results = results.assign(dataset=results["dataset"].fillna(own)
                             if "dataset" in results else own)
    order = list(dict.fromkeys(results["dataset"]))  # the run's own first, as the table
    runs = sorted({(r.method, r.backbone, r.dataset) for r in results.itertuples()},
                  key=lambda run: (run[0], run[1], order.index(run[2])))
    figure, axes = fig.panels(len(runs), 4.4, 3.6)
    for ax, (method, backbone, dataset) in zip(axes[0], runs):
        mine = results[(results["method"] == method) & (results["backbone"] == backbone)
                       & (results["dataset"] == dataset)]
        for metric, name in METRICS.items():
            if mine[metric].isna().all():
                continue
            line = removal.curves(mine, metric)
            for kind, group in line.groupby("kind"):
                style, colour = STYLE[kind]
                ax.errorbar(group["removed"], group[metric], yerr=group["se"], fmt=style,
                            color=colour, ms=4, capsize=2, label=f"{name}, {kind} removed",
                            alpha=1.0 if metric == "probe_test_acc" else 0.4)
        ax.set(xlabel="training images removed from A", ylabel="test accuracy",
               title=f"{method} ({backbone}) on {dataset}"
                     + (" (its public test split)" if dataset == order[0] else ""))
        ax.grid(alpha=0.3)
        fig.legend(ax, 6)
    figure.tight_layout()
    return figure


def removal_sections(inputs: dict, out: Path) -> list[tuple[str, str]]:
    """The figure and its table (figures/removal.csv), when the experiment ran."""
    if "removal" not in inputs:
        return []
    results = pd.read_csv(inputs["removal"])
    results.to_csv(out / "removal.csv", index=False)
    seeds = results["seed"].nunique()
    text = (f"<p>Each target model A retrained without the training images it memorizes "
            f"most (highest SSLMem score) or without as many random ones, its encoder probed "
            f"on the public test split and on each second dataset of removal.downstream "
            f"({seeds} seed(s); error bars: one standard error over seeds). The SSLMem paper "
            f"finds removing the memorized images costs more accuracy than removing random "
            f"ones. Table: figures/removal.csv.</p>")
    return [("Removing memorized training images (SSLMem's removal experiment)",
             text + fig.img(fig.figure_png(plot_removal(results), out / "removal.png"),
                            "The memorized line below the random one: the memorized "
                            "images carry more of what the encoder learns."))]
