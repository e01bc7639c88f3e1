"""The report's figures: tables in, matplotlib figures out; they recompute nothing.

Each works for any valid config: one epoch, one size, one seed, one class, k = 1, no
memorized crop. `tests/test_report.py` draws every one from such tables.
"""

from __future__ import annotations

import base64
import functools
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import transforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..attack.score import SHARES  # noqa: E402
from .tables import RUN_KEYS, trend_rows  # noqa: E402

# Okabe and Ito's palette, told apart with any colour vision: every figure's lines cycle
# through it, and the fixed colours below are taken from it
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000"]
GREY, LIGHT_GREY = "#999999", "#DDDDDD"
GROUP_COLOURS = ["#D55E00", "#0072B2", GREY, LIGHT_GREY]  # memorized, misrep., corr., unass.
REAL, CONTROL = "#D55E00", GREY  # the real test's and a control's histograms


def in_palette(plot):
    """Draw `plot`'s figure with lines and bars cycling through PALETTE: the figure's own
    setting, so importing this module leaves the process's matplotlib settings alone."""
    @functools.wraps(plot)
    def drawn(*args, **kwargs):
        with plt.rc_context({"axes.prop_cycle": matplotlib.cycler(color=PALETTE)}):
            return plot(*args, **kwargs)
    return drawn


# what a reader calls each control (summary.csv's codes are none, heldout, untrained)
CONTROL_NAMES = {"none": "real test", "heldout": "held-out control",
                 "untrained": "untrained control"}
# a reconstruction judged as its image's class, or not: colour and line style both tell
RECOVERED = {True: ("#009E73", "-", "judged the true class"),
             False: ("#D55E00", "--", "judged another class")}


@in_palette
def plot_curves(curves: pd.DataFrame, title: str) -> plt.Figure:
    """Figure 3 of the paper: accuracy on the top-p most confident crops, target vs
    reference, swap-averaged, one panel per control. Bands: over seeds (min to max of the
    seeds' curves) where there are several, else the bootstrap 95 % interval."""
    controls = list(dict.fromkeys(curves["control"]))
    fig, axes = panels(len(controls), 4.2, 3.4)
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
               title=f"{CONTROL_NAMES.get(control, control)} ({band})", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    legend(axes[0][0], 8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def legend(ax, fontsize: int, *twins) -> None:
    """The panel's legend (and its `twins`' lines: axes sharing its x), where it has
    labelled lines, below the panel: never over the data. Out of the layout, so the panels
    keep their size; the saved figure grows to hold it (`figure_png`). Placed in points
    below the axes, clear of tick labels and x label."""
    handles, labels = ax.get_legend_handles_labels()
    for twin in twins:
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if not handles:
        return
    below = transforms.offset_copy(ax.transAxes, fig=ax.figure, y=-36, units="points")
    ax.legend(handles, labels, fontsize=fontsize, loc="upper center", bbox_to_anchor=(0.5, 0),
              bbox_transform=below, ncol=2 if len(handles) > 4 else 1,
              frameon=False).set_in_layout(False)


def panels(n: int, width: float, height: float):
    """A row of `n` panels (one, empty, when there is nothing to show)."""
    return plt.subplots(1, max(n, 1), figsize=(width * max(n, 1), height), squeeze=False)


def series(ax, table: pd.DataFrame, x: str, y: str, label: str, colour=None, style="o-",
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


@in_palette
def plot_score_trends(summary: pd.DataFrame, along: str) -> plt.Figure:
    """Figure 4 of the paper: déjà vu score (with the held-out control) and the linear-probe
    train-test gap along training epochs or train-set size."""
    rows = trend_rows(summary, along)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for (method, backbone, variant, embedding, other), group in rows.groupby(
            ["method", "backbone", "variant", "embedding", _lines_by(along)], sort=True):
        tag = (f"{model_name(method, backbone, variant)} {embedding}"
               + (f" n{other}" if along == "epoch" else ""))
        real = group[group["control"].isin(["none", "untrained"])]
        series(left, real, along, "score", tag, low="score_ci_low", high="score_ci_high")
        held = group[group["control"] == "heldout"]
        if len(held):
            series(left, held, along, "score", f"{tag} held-out", style="x:",
                    colour=left.lines[-1].get_color())
    left.axhline(0, color="k", lw=0.6)
    left.set(xlabel=axis_name(along), ylabel="déjà vu score at p", title="déjà vu score")
    first = rows["embedding"].iloc[0] if len(rows) else None
    probe = rows[(rows["embedding"] == first)
                 & rows["control"].isin(["none", "untrained"])].dropna(subset=["probe_gap"])
    probe = probe.drop_duplicates(RUN_KEYS + ["k", "crop_mode"])
    for (method, backbone, variant, other), group in probe.groupby(
            ["method", "backbone", "variant", _lines_by(along)]):
        tag = model_name(method, backbone, variant) + (f" n{other}" if along == "epoch" else "")
        series(right, group, along, "probe_gap", tag)
    right.axhline(0, color="k", lw=0.6)
    right.set(xlabel=axis_name(along), ylabel="train acc - test acc",
              title="linear probe train-test gap")
    _finish(fig, [left, right], along)
    return fig


@in_palette
def plot_share_trends(summary: pd.DataFrame, along: str) -> plt.Figure:
    """Figure 5 of the paper: memorized, misrepresented and correlated shares along epochs
    or train-set size (real test, one panel per method and embedding)."""
    rows = trend_rows(summary, along)
    rows = rows[rows["control"].isin(["none", "untrained"])]
    groups = list(rows.groupby(["method", "backbone", "variant", "embedding"], sort=True))
    fig, axes = panels(len(groups), 3.6, 3.3)
    for ax, ((method, backbone, variant, embedding), group) in zip(axes[0], groups):
        for share, colour in zip(SHARES[:3], GROUP_COLOURS):
            for other, part in group.groupby(_lines_by(along)):
                style = "o-" if other == group[_lines_by(along)].max() else "s--"
                tag = share + (f" n{other}" if along == "epoch" else "")
                series(ax, part, along, share, tag, colour=colour, style=style)
        ax.set(xlabel=axis_name(along), ylabel="share of attacked images", ylim=(0, 1),
               title=f"{model_name(method, backbone, variant)} {embedding}")
    _finish(fig, axes[0], along)
    return fig


def model_name(method: str, backbone: str, variant: str = "default") -> str:
    """How a figure names a model pair: its method and backbone, and its variant unless
    that is the config as written."""
    return f"{method} {backbone}" + ("" if variant == "default" else f" [{variant}]")


def _lines_by(along: str) -> str:
    """What separates the lines of a trend panel: the size along epochs, k along sizes."""
    return "train_size" if along == "epoch" else "k"


def _finish(fig: plt.Figure, axes, along: str) -> None:
    for ax in axes:
        ax.grid(alpha=0.3)
        legend(ax, 6)
        if along == "train_size":
            ax.set_xscale("log")
    fig.tight_layout()


def axis_name(along: str) -> str:
    return {"epoch": "training epochs", "train_size": "train-set size (images per class)"}[along]


@in_palette
def plot_partition(summary: pd.DataFrame) -> plt.Figure:
    """Stacked shares of memorized / misrepresented / correlated / unassociated per row."""
    labels = [f"{model_name(r.method, r.backbone, r.variant)} n{r.train_size} s{r.seed} "
              f"{r.embedding} {r.crop_mode} "
              f"k{r.k} ep{r.epoch} {CONTROL_NAMES.get(r.control, r.control)}"
              for r in summary.itertuples()]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(summary) + 1.2))
    left = np.zeros(len(summary))
    for share, colour in zip(SHARES, GROUP_COLOURS):
        ax.barh(labels, summary[share], left=left, color=colour, label=share)
        left += summary[share].to_numpy()
    ax.set(xlabel="share of attacked images (swap-averaged)", xlim=(0, 1))
    ax.legend(ncol=4, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


@in_palette
def plot_examples(crops: list, originals: list, boxes: list, neighbours_t: list,
                  neighbours_r: list, captions: list[str], n_show: int = 5) -> plt.Figure:
    """Per example: crop, original with its box, then up to `n_show` target and reference
    neighbours (as many as every example has: k may be smaller)."""
    n = len(crops)
    n_show = min([n_show] + [len(nb[0]) for nb in (*neighbours_t, *neighbours_r)])
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


@in_palette
def plot_memorization(samples: pd.DataFrame, title: str) -> plt.Figure:
    """Histograms of the one-model memorization confidence H(g) - H(p_T) of the images the
    target's k-NN labels right and the classifier wrong, one panel per classifier, the real
    test against the held-out control."""
    classifiers = list(dict.fromkeys(samples["classifier"]))
    fig, axes = panels(len(classifiers), 4.2, 3.2)
    for ax, classifier in zip(axes[0], classifiers):
        rows = samples[(samples["classifier"] == classifier) & samples["memorization"].notna()]
        values = rows["memorization"].to_numpy()
        bins = np.linspace(min(0.0, values.min(initial=0.0)), max(values.max(initial=1.0), 1e-6),
                           25)
        for control, colour in (("none", REAL), ("heldout", CONTROL)):
            chosen = rows.loc[rows["control"] == control, "memorization"]
            total = (samples["classifier"] == classifier) & (samples["control"] == control)
            if len(chosen):
                ax.hist(chosen, bins=bins, alpha=0.55, color=colour,
                        label=f"{'attacked set' if control == 'none' else 'held-out set'}: "
                              f"{len(chosen)} of {int(total.sum())}")
        ax.set(xlabel="H(classifier) − H(k-NN target)", ylabel="images",
               title=f"classifier: {classifier}")
        legend(ax, 7)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


@in_palette
def plot_sslmem(table: pd.DataFrame, figures: dict, title: str) -> plt.Figure:
    """SSLMem: the distribution of m on training and on held-out images, and (where the
    two-model partition is known) its mean per partition group."""
    groups = [g for g in SHARES if figures.get(f"mean_m_{g}") is not None]
    fig, axes = plt.subplots(1, 2 if groups else 1, figsize=(9 if groups else 4.6, 3.2),
                             squeeze=False)
    ax = axes[0][0]
    low, high = (table["m"].min(), table["m"].max()) if len(table) else (0.0, 0.0)
    bins = np.linspace(low, high + 1e-9, 30)
    for name, chosen, colour in (("training (A, B)", table["set"].isin(["A", "B"]), REAL),
                                 ("held-out", table["set"] == "heldout", CONTROL)):
        if chosen.any():
            ax.hist(table.loc[chosen, "m"], bins=bins, alpha=0.55, color=colour, density=True,
                    label=f"{name}: mean {table.loc[chosen, 'm'].mean():+.4f}")
    ax.axvline(0, color="k", lw=0.6)
    ax.set(xlabel="m(x) = d_reference − d_target", ylabel="density", title="SSLMem")
    legend(ax, 7)
    if groups:
        ax = axes[0][1]
        ax.bar(groups, [figures[f"mean_m_{g}"] for g in groups],
               color=GROUP_COLOURS[:len(groups)])
        ax.axhline(0, color="k", lw=0.6)
        ax.set(ylabel="mean m", title="by déjà vu partition (training images)")
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


@in_palette
def plot_reconstructions(examples: list[dict], title: str) -> plt.Figure:
    """Per attacked image: crop, original with its box, target samples, reference samples;
    a sample's frame says whether the judges see the true class in it (solid green) or not
    (dashed vermilion), as the legend below the grid says."""
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
                colour, style, _ = RECOVERED[bool(recovered[j] >= 0.5)]
                for spine in ax.spines.values():
                    spine.set(visible=True, color=colour, linestyle=style, linewidth=1.5)
    heads = ["crop", "image"] + [f"target {j + 1}" for j in range(n_samples)] + [
        f"reference {j + 1}" for j in range(n_samples)]
    for ax, head in zip(axes[0], heads):
        ax.set_title(head, fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    if examples:  # what a sample's frame says, below the grid
        frames = [plt.Rectangle((0, 0), 1, 1, fill=False, ec=colour, ls=style, lw=1.5,
                                label=f"sample {what}") for colour, style, what in RECOVERED.values()]
        fig.legend(handles=frames, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=2,
                   fontsize=7, frameon=False,
                   title="samples decoded from the crop's neighbours: target's, reference's "
                         "decoder", title_fontsize=7).set_in_layout(False)
    return fig


@in_palette
def plot_self_reconstructions(shown: dict) -> plt.Figure:
    """Public test images (top row) and their reconstructions from their own embedding by
    decoder A and decoder B (`shown`: row name -> images)."""
    n = max(1, len(shown["original"]))
    fig, axes = plt.subplots(len(shown), n, figsize=(1.0 * n, 1.1 * len(shown)), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for i, (name, images) in enumerate(shown.items()):
        for j, image in enumerate(images):
            axes[i, j].imshow(image)
        axes[i, 0].set_ylabel(name, fontsize=7)
    fig.tight_layout()
    return fig


def img(b64: str, caption: str = "") -> str:
    """A base64 PNG (`figure_png`) embedded in the page, with a caption saying what to look
    for."""
    from .html_page import figure
    return figure(b64, caption)


def figure_png(fig: plt.Figure, path: Path) -> str:
    """Save the figure as `path` (PNG) and beside it as SVG; return the PNG base64-encoded
    for the HTML page."""
    buf = io.BytesIO()
    # what the tight box holds besides the panels: the figure's texts (its title) and the
    # legends placed out of the layout, below the panels
    extra = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends + fig.texts
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", bbox_extra_artists=extra)
    fig.savefig(path.with_suffix(".svg"), format="svg", bbox_inches="tight",
                bbox_extra_artists=extra)
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode()
