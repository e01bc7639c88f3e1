"""The report's UnitMem section (dejavu/onemodel/unitmem.py, definitions §13): each layer's
distribution of unit selectivity, target against reference, and the training images that
alone drive the target's most selective units."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import figures as fig
from .loading import files

RUN_PARTS = ("method", "backbone", "variant", "train_size", "seed", "epoch")
COLOURS = {"target": "#c0392b", "reference": "#2c7fb8"}
TOP_UNITS = 8


def run_of(path: str) -> dict:
    """The run a UnitMem table belongs to, from its path (.../unitmem/<run>/epoch<e>)."""
    parts = Path(path).with_suffix("").parts[-6:]
    values = [*parts[:3], int(parts[3].removeprefix("n")), int(parts[4].removeprefix("s")),
              int(parts[5].removeprefix("epoch"))]
    return dict(zip(RUN_PARTS, values))


def layer_summary(paths: list[str]) -> pd.DataFrame:
    """Per run, layer and model: units, mean and median UnitMem, and the share above 0.5."""
    rows = []
    for path in paths:
        table = pd.read_parquet(path)
        for (layer, model), part in table.groupby(["layer", "model"], sort=False):
            u = part["unitmem"]
            rows.append({**run_of(path), "layer": layer, "model": model, "units": len(u),
                         "mean": u.mean(), "median": u.median(), "above_half": (u > 0.5).mean()})
    return pd.DataFrame(rows)


def plot_distributions(table: pd.DataFrame):
    """One panel per layer, in the table's order: UnitMem histograms of both models."""
    names = list(dict.fromkeys(table["layer"]))
    figure, axes = fig.panels(len(names), 3.2, 2.8)
    bins = np.linspace(0, 1, 21)
    for ax, name in zip(axes[0], names):
        for model, colour in COLOURS.items():
            values = table[(table["layer"] == name) & (table["model"] == model)]["unitmem"]
            ax.hist(values, bins=bins, histtype="step", color=colour, lw=1.5,
                    label=f"{model} (mean {values.mean():.2f})")
        ax.set(xlabel="UnitMem", ylabel="units", title=name)
        fig.legend(ax, 6)
    figure.tight_layout()
    return figure


def top_units(table: pd.DataFrame) -> pd.DataFrame:
    """The target's TOP_UNITS most selective units, most selective first."""
    return (table[table["model"] == "target"]
            .sort_values("unitmem", ascending=False, kind="stable").head(TOP_UNITS))


def plot_top_images(top: pd.DataFrame, images: np.ndarray):
    """The images behind the most selective units (`top_units`), each titled by its unit."""
    figure, axes = plt.subplots(1, max(len(top), 1), figsize=(1.4 * max(len(top), 1), 1.8),
                                squeeze=False)
    for ax, row, image in zip(axes[0], top.itertuples(), images):
        ax.imshow(image)
        ax.set_title(f"{row.layer}/{row.unit}\n{row.unitmem:.2f}", fontsize=6)
    for ax in axes[0]:
        ax.axis("off")
    return figure


def top_images(top: pd.DataFrame, inputs: dict) -> np.ndarray:
    """The dataset images behind the units `top` (`top_units`), in its order."""
    from ..core.store import open_images, read_index, read_rows
    index = read_index(inputs["index"], columns=["id"])
    rows = index.reset_index().set_index("id").loc[top["top_id"]].iloc[:, 0].to_numpy()
    order = np.argsort(rows, kind="stable")
    images = read_rows(open_images(inputs["images"]), rows[order])
    out = np.empty_like(images)
    out[order] = images
    return out


def unitmem_sections(inputs: dict, out: Path) -> list[tuple[str, str]]:
    """The first run's distributions and top images, every run's layer summary as a CSV."""
    paths = files(inputs, "unitmem")
    if not paths:
        return []
    summary = layer_summary(paths)
    summary.to_csv(out / "unitmem.csv", index=False)
    first = pd.read_parquet(paths[0])
    run = run_of(paths[0])
    text = (f"<p>Per unit, how much a single image of set A drives it: (μ_max − μ_rest) / "
            f"(μ_max + μ_rest) of its mean absolute activation over augmented views, for "
            f"target A (trained on those images) and reference B (not); near 1, one image "
            f"alone. Shown: {run['method']} ({run['backbone']}, {run['variant']}, "
            f"{run['train_size']} per class, seed {run['seed']}, epoch {run['epoch']}); "
            f"every run: figures/unitmem.csv.</p>")
    body = text + fig.img(fig.figure_png(plot_distributions(first), out / "unitmem.png"),
                          "The target's selectivity to the right of the reference's in a "
                          "layer: that layer has units given over to single images.")
    body += ("<p>The training images behind the target's most selective units (layer/unit "
             "and UnitMem above each):</p>")
    top = top_units(first)
    body += fig.img(fig.figure_png(plot_top_images(top, top_images(top, inputs)),
                                   out / "unitmem_top.png"),
                    "The images a unit answers to above all others.")
    return [("UnitMem: units that single training images dominate", body)]
