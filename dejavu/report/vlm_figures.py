"""The report's vision-language section (dejavu/vlm/, definitions §14): the population
precision and recall gaps against k, per search and prediction mode, the real test beside
its held-out and untrained controls, with bootstrap intervals (mean over seeds)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import figures as fig

STYLE = {"none": ("o-", "#c0392b"), "heldout": ("x:", "#7f8c8d"),
         "untrained": ("s--", "#2c7fb8")}


def plot_gaps(table: pd.DataFrame, gap: str):
    """One panel per search and mode: `gap` against k, one line per control."""
    panels = sorted({(r.search, r.mode) for r in table.itertuples()})
    figure, axes = fig.panels(len(panels), 3.4, 3.0)
    for ax, (search, mode) in zip(axes[0], panels):
        part = table[(table["search"] == search) & (table["mode"] == mode)]
        for control, (style, colour) in STYLE.items():
            mine = part[part["control"] == control]
            if len(mine):
                fig.series(ax, mine, "k", gap, control, colour=colour, style=style,
                           low=f"{gap}_ci_low", high=f"{gap}_ci_high")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xscale("log")
        ax.set(xlabel="k (neighbours)", ylabel=gap.replace("_", " "),
               title=f"{search}, {mode}")
        ax.grid(alpha=0.3)
        fig.legend(ax, 6)
    figure.tight_layout()
    return figure


def vlm_sections(inputs: dict, out: Path) -> list[tuple[str, str]]:
    """The gaps' figures and the table (figures/vlm_summary.csv), when the test ran."""
    if "vlm" not in inputs:
        return []
    table = pd.read_csv(inputs["vlm"])
    table.to_csv(out / "vlm_summary.csv", index=False)
    text = ("<p>Each training record's caption alone, queried against the public records' "
            "images (t2i) or captions (t2t): the objects its neighbours hold, scored against "
            "the record's own. Population gap: the share of records where the target does "
            "better than the reference minus the share where it does worse; the held-out and "
            "untrained controls should sit at zero (definitions §14). Error bars: the "
            "bootstrap interval, or the seeds' spread.</p>")
    body = text
    for gap in ("precision_gap", "recall_gap"):
        body += fig.img(fig.figure_png(plot_gaps(table, gap), out / f"vlm_{gap}.png"))
    return [("Vision–language models: déjà vu from captions", body)]
