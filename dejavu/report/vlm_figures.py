"""The report's vision-language section (dejavu/vlm/, definitions §14): the population
precision and recall gaps against k, per search and prediction mode, the real test beside
its held-out and untrained controls, with bootstrap intervals (mean over seeds); the recall
CCDF of target against reference; example captions with each model's nearest public
images and the objects it predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures as fig
from .mitigation import DEFAULT as DEFAULT_VARIANT
from .verdict import widest_mode

STYLE = {"none": ("o-", fig.REAL), "heldout": ("x:", fig.CONTROL),  # colour-blind safe
         "untrained": ("s--", fig.PALETTE[0])}


def by_control(part: pd.DataFrame):
    """The lines of a gaps panel: one per control."""
    for control, (style, colour) in STYLE.items():
        mine = part[part["control"] == control]
        if len(mine):
            yield control, mine, style, colour


def by_test(part: pd.DataFrame):
    """The lines of a tests panel: the two-model (solid) and one-model (dashed) test, on
    the real test's and the held-out records."""
    for (test, control), mine in part.groupby(["test", "control"]):
        style = ("o" if control == "none" else "x") + ("--" if test == "vlm_onemodel" else "-")
        yield f"{test}, {control}", mine, style, STYLE[control][1]


def plot_gaps(table: pd.DataFrame, gap: str, lines=by_control):
    """One panel per search and mode: `gap` against k, a line per `lines(panel's rows)`."""
    panels = sorted({(r.search, r.mode) for r in table.itertuples()})
    figure, axes = fig.panels(len(panels), 3.4, 3.0)
    for ax, (search, mode) in zip(axes[0], panels):
        part = table[(table["search"] == search) & (table["mode"] == mode)]
        for label, mine, style, colour in lines(part):
            fig.series(ax, mine, "k", gap, label, colour=colour, style=style,
                       low=f"{gap}_ci_low", high=f"{gap}_ci_high")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xscale("log")
        ax.set(xlabel="k (neighbours)", ylabel=gap.replace("_", " "),
               title=f"{search}, {mode}")
        ax.grid(alpha=0.3)
        fig.legend(ax, 6)
    figure.tight_layout()
    return figure


def plot_ccdf(curves: list[dict], k: int, mode: str):
    """One panel per search: P(recall > t) against t, target beside reference."""
    chosen = [c for c in curves if c["k"] == k and c["mode"] == mode]
    figure, axes = fig.panels(len(chosen), 3.4, 3.0)
    for ax, curve in zip(axes[0], chosen):
        for role, colour, style in (("target", fig.REAL, "-"), ("reference", fig.CONTROL, "--")):
            ax.step(curve["recall"], curve[role], where="post", color=colour, ls=style,
                    label=role)
        ax.set(xlabel="recall threshold t", ylabel="share of records with recall > t",
               title=f"{curve['search']}, k = {k}, {mode}", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        fig.legend(ax, 6)
    figure.tight_layout()
    return figure


def plot_examples(shown: dict, images, vocabulary: list[str]):
    """Per example record: its caption and objects, then each model's nearest public
    images, with the objects the model predicts and their precision and recall."""
    records = shown["records"]
    n_show = len(records[0]["target"]["neighbours"]) if records else 1
    figure, axes = fig.plt.subplots(2 * max(len(records), 1), n_show,
                                    figsize=(1.25 * n_show, 1.55 * 2 * max(len(records), 1)),
                                    squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    names = lambda ids: ", ".join(vocabulary[i] for i in ids) or "none"  # noqa: E731
    for i, record in enumerate(records):
        for j, role in enumerate(("target", "reference")):
            part, row = record[role], 2 * i + j
            for col, public_row in enumerate(part["neighbours"]):
                axes[row, col].imshow(images[public_row])
            axes[row, 0].set_title(
                (f"\u201c{record['caption']}\u201d \u2014 objects: {names(record['objects'])}\n"
                 if j == 0 else "") +
                f"{role} ({part['model']}) predicts {names(part['predicted'])}: "
                f"precision {part['precision']:.2f}, recall {part['recall']:.2f}",
                fontsize=6, loc="left")
    figure.subplots_adjust(wspace=0.05, hspace=0.55)  # not tight_layout: titles span rows
    return figure


def plot_agreement(agreed: list[dict]):
    """One panel per search: the records each test finds memorized, as a 2 x 2 heatmap."""
    figure, axes = fig.panels(len(agreed), 2.8, 2.6)
    for ax, part in zip(axes[0], agreed):
        counts = np.array(part["counts"])
        ax.imshow(counts, cmap="Blues")
        for (i, j), n in np.ndenumerate(counts):
            ax.text(j, i, f"{n}\n{n / max(counts.sum(), 1):.0%}", ha="center", va="center",
                    fontsize=8, color="white" if n > counts.max() / 2 else "black")
        ax.set_xticks([0, 1], ["memorized", "not"], fontsize=7)
        ax.set_yticks([0, 1], ["memorized", "not"], fontsize=7)
        ax.set(xlabel="one-model test", ylabel="two-model test",
               title=f"{part['search']}, k = {part['k']}, {part['mode']}")
    figure.tight_layout()
    return figure


def onemodel_section(table: pd.DataFrame, agreed: list[dict], out: Path) -> str:
    """The one-model test's gaps beside the two-model test's, and their agreement."""
    one = table[table["test"] == "vlm_onemodel"]
    if one.empty:
        return ""
    body = (f"<p>The one-model test: each VLM against the reference text model "
            f"<code>{one['reference'].iloc[0]}</code> (never trained on A), whose "
            f"caption-to-caption search predicts the objects; its gaps (dashed) beside the "
            f"two-model test's (solid), real test and held-out records.</p>")
    both = table[table["control"].isin(["none", "heldout"])]
    for gap in ("precision_gap", "recall_gap"):
        body += fig.img(fig.figure_png(plot_gaps(both, gap, by_test),
                                       out / f"vlm_onemodel_{gap}.png"),
                        "Dashed above solid: the one-model test reads more déjà vu than the "
                        "two-model test (it counts what a caption's words alone predict).")
    if agreed:
        body += ("<p>Which records each test finds memorized (the target's recall above the "
                 "reference's), over A's and B's records, first seed, last epoch.</p>")
        body += fig.img(fig.figure_png(plot_agreement(agreed), out / "vlm_agreement.png"),
                        "Records each test finds memorized: large off-diagonal counts mean "
                        "the two tests disagree about which records.")
    return body


def detail_sections(test: dict | None, store: str | None, out: Path) -> str:
    """The recall CCDFs and the examples of the first seed's test at the last epoch (its
    JSON, `test`; the records store for the examples' images)."""
    if test is None:
        return ""
    shown = test["examples"]
    k = min({c["k"] for c in test["ccdf"]}, key=lambda k: abs(k - 10))
    mode = "top10" if any(c["mode"] == "top10" for c in test["ccdf"]) else test["ccdf"][-1]["mode"]
    body = (f"<p>Recall CCDF: the share of the scored records (each model on the records it "
            f"trained on) whose recall exceeds each threshold, text-to-image and text-to-text, "
            f"at k = {k} and {mode}; the target's curve above the reference's (a VLM trained "
            f"elsewhere: the reference text model's) is memorization (its area gap is "
            f"<code>recall_ccdf_area_gap</code>).</p>")
    body += fig.img(fig.figure_png(plot_ccdf(test["ccdf"], k, mode),
                                   out / "vlm_recall_ccdf.png"),
                    "The target's curve above the reference's is memorization.")
    if not shown:  # one VLM trained elsewhere: no reference VLM's neighbours to show
        return body
    from ..core.store import open_images, read_rows
    store = Path(store)
    vocabulary = pd.read_csv(store / "vocabulary.csv")["object"].tolist()
    rows = sorted({r for e in shown["records"] for role in ("target", "reference")
                   for r in e[role]["neighbours"]})
    images = dict(zip(rows, read_rows(open_images(store / "images.zarr"),
                                      np.asarray(rows, dtype=np.int64))))
    body += ("<p>The records whose objects the target recovers most beyond the reference: "
             "the caption, then each model's five nearest public images by its caption "
             "query, and the objects each predicts from its neighbours.</p>")
    body += fig.img(fig.figure_png(plot_examples(shown, images, vocabulary),
                                   out / "vlm_examples.png"),
                    "Objects the target names that the caption does not, and the reference "
                    "misses, are what the target recalls of the training image.")
    return body


def models_line(table: pd.DataFrame) -> str:
    """Which VLMs the rows measured, and against which reference text model."""
    models = sorted(table["model"].dropna().astype(str).unique()) if "model" in table else []
    refs = (sorted(table["reference"].dropna().astype(str).unique())
            if "reference" in table else [])
    line = f"Models measured: {', '.join(models) or 'unnamed'}"
    return f"<p>{line}; one-model reference: {', '.join(refs)}.</p>" if refs else \
        f"<p>{line}.</p>"


def read_summary(path: str) -> pd.DataFrame:
    """results/vlm_summary.csv, with the columns a summary of an older run or of a model
    trained elsewhere leaves out (variant, seed, epoch) present and empty."""
    table = pd.read_csv(path)
    for column in ("model", "variant", "seed", "epoch"):
        if column not in table:
            table[column] = np.nan
    return table


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows the gaps panels draw: the default variant's (where variants ran) at the last
    epoch, with the untrained control (epoch 0)."""
    if table["variant"].notna().any():
        table = table[table["variant"] == DEFAULT_VARIANT]
    if table["epoch"].notna().any():
        table = table[(table["epoch"] == table["epoch"].max()) | (table["control"] == "untrained")]
    return table


def plot_along(table: pd.DataFrame, gap: str):
    """`gap` against the epoch, a line per variant and control (the real test solid, the
    held-out control dotted), per search: at the largest k, predicting all the neighbours'
    objects (or the widest mode measured)."""
    k = table["k"].max()
    mode = widest_mode(table)
    part = table[(table["k"] == k) & (table["mode"] == mode)]
    searches = sorted(set(part["search"]))
    figure, axes = fig.panels(len(searches), 3.8, 3.0)
    for ax, search in zip(axes[0], searches):
        mine = part[part["search"] == search]
        for i, (variant, rows) in enumerate(mine.groupby(mine["variant"].fillna(
                DEFAULT_VARIANT))):
            colour = fig.PALETTE[i % len(fig.PALETTE)]
            real = rows[rows["control"].isin(["none", "untrained"])]
            fig.series(ax, real, "epoch", gap, variant, colour=colour,
                       low=f"{gap}_ci_low", high=f"{gap}_ci_high")
            held = rows[rows["control"] == "heldout"]
            if len(held):
                fig.series(ax, held, "epoch", gap, f"{variant}, held-out", colour=colour,
                           style="x:")
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="epoch", ylabel=gap.replace("_", " "), title=f"{search}, k={k}, {mode}")
        ax.grid(alpha=0.3)
        fig.legend(ax, 6)
    figure.tight_layout()
    return figure


def along_section(table: pd.DataFrame, out: Path) -> str:
    """The gaps along training, per variant, where more than one trained epoch or more than
    one variant was tested; else a line saying which keys draw it."""
    trained = table.dropna(subset=["epoch"])
    trained = trained[trained["epoch"] > 0]
    if trained["epoch"].nunique() < 2 and trained["variant"].nunique() < 2:
        return ("<p>Along training and across variants: one trained epoch of one variant "
                "was tested; vlm.train.checkpoints and vlm.variants draw it.</p>")
    body = ("<p>Along training and across variants: the gaps at each tested epoch (0: the "
            "untrained model), a line per variant, its held-out control dotted; look for a "
            "real line that climbs away from zero while its control stays there.</p>")
    for gap in ("precision_gap", "recall_gap"):
        body += fig.img(fig.figure_png(plot_along(table.dropna(subset=["epoch"]), gap),
                                       out / f"vlm_{gap}_along.png"),
                        "A real line that climbs away from zero while its held-out line "
                        "stays there is memorization growing with training.")
    return body


def vlm_sections(inputs: dict, out: Path) -> list[tuple[str, str]]:
    """The gaps' figures and the table (figures/vlm_summary.csv), the recall CCDFs and the
    examples, when the test ran."""
    if "vlm" not in inputs:
        return []
    everything = read_summary(inputs["vlm"])
    everything.to_csv(out / "vlm_summary.csv", index=False)
    table = everything[everything["test"] == "vlm"]
    text = ("<p>Each training record's caption alone, queried against the public records' "
            "images (t2i) or captions (t2t): the objects its neighbours hold, scored against "
            "the record's own. Population gap: the share of records where the target does "
            "better than the reference minus the share where it does worse; the held-out and "
            "untrained controls should sit at zero (definitions §14). Error bars: the "
            "bootstrap interval, or the seeds' spread.</p>")
    body = text + models_line(everything)
    for gap in ("precision_gap", "recall_gap"):
        body += fig.img(fig.figure_png(plot_gaps(final_rows(table), gap),
                                       out / f"vlm_{gap}.png"),
                        "The real test (solid) above zero with its controls at zero is "
                        "déjà vu from captions.")
    body += along_section(table, out)
    test = (json.loads(Path(inputs["vlm_test"]).read_text()) if "vlm_test" in inputs
            else None)  # read once: the CCDFs, the examples and the agreement
    body += detail_sections(test, inputs.get("vlm_store"), out)
    body += onemodel_section(everything, (test or {}).get("agreement", []), out)
    return [("Vision–language models: déjà vu from captions", body)]
