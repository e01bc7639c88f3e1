"""The report: `summary.csv` (SPEC §9) and one self-contained HTML page.

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
    table = pd.DataFrame(rows)
    extra = [c for c in table.columns if c not in SUMMARY_COLUMNS]
    return table[SUMMARY_COLUMNS + extra].sort_values(KEYS + ["epoch", "control"],
                                                      ignore_index=True)


def curves_table(score_files: list[str]) -> pd.DataFrame:
    parts = []
    for path in score_files:
        meta = json.loads(Path(path).read_text())[0]
        curves = pd.read_parquet(path.removesuffix(".json") + ".curves.parquet")
        parts.append(curves.assign(**{k: meta[k] for k in KEYS + ["epoch"]}))
    return pd.concat(parts, ignore_index=True)


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
    """Figure 3 of the paper: accuracy on the top-p most confident crops, target vs reference,
    swap-averaged, one panel per control."""
    controls = list(dict.fromkeys(curves["control"]))
    fig, axes = plt.subplots(1, len(controls), figsize=(4.2 * len(controls), 3.4), squeeze=False)
    for ax, control in zip(axes[0], controls):
        mean = curves[curves["control"] == control].groupby("p")[["acc_target",
                                                                  "acc_reference"]].mean()
        ax.plot(mean.index * 100, mean["acc_target"], "o-", label="target (trained on set)")
        ax.plot(mean.index * 100, mean["acc_reference"], "s--", label="reference")
        ax.set(xlabel="top-p % most confident", ylabel="k-NN top-1 accuracy",
               title=f"{control}", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_partition(summary: pd.DataFrame) -> plt.Figure:
    """Stacked shares of memorized / misrepresented / correlated / unassociated per row."""
    labels = [f"{r.embedding} {r.crop_mode} k{r.k} ep{r.epoch} {r.control}"
              for r in summary.itertuples()]
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


def figure_png(fig: plt.Figure, path: Path) -> str:
    """Save the figure to `path` and return it base64-encoded for the HTML page."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
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
    summary = summary_table(list(inputs["scores"]))
    summary.to_csv(outputs["summary"], index=False)
    curves = curves_table(list(inputs["scores"]))
    intro = _score_intro(config)
    if "heldout" not in set(summary["control"]):
        intro += ("<p><b>The held-out control was skipped</b>: no annotated image was held "
                  f"out (split.heldout_fraction = {config['split']['heldout_fraction']}), as "
                  "on ImageNet, where box images are scarce (SPEC §1).</p>")
    sections = [("Scores", intro + _table_html(summary[[
        "method", "backbone", "train_size", "seed", "epoch", "embedding", "k", "crop_mode",
        "control", "n_attacked", "acc_target", "acc_reference", "score", "score_ci_low",
        "score_ci_high", *SHARES]]))]
    for keys, group in curves.groupby(KEYS, sort=False):
        last_epoch = group["epoch"].max()
        shown = group[(group["epoch"] == last_epoch) | (group["control"] == "untrained")]
        name = "curves_" + "_".join(str(k) for k in keys)
        title = ", ".join(f"{k}={v}" for k, v in zip(KEYS, keys))
        png = figure_png(plot_curves(shown, textwrap.fill(f"{title}, epoch {last_epoch}", 110)),
                         figures / f"{name}.png")
        sections.append((f"Accuracy vs confidence (Figure 3): {title}", _img(png)))
    sections.append(("Sample partition", _img(figure_png(plot_partition(summary),
                                                         figures / "partition.png"))))
    panel = example_panel(inputs["knn_target"], inputs["knn_reference"], inputs["crops_store"],
                          inputs["images"], inputs["index"])
    sections.append(("Most confident memorized crops (set A): crop, image, 5 nearest public "
                     "images under the target (T) and the reference (R) with their labels",
                     _img(figure_png(plot_examples(**panel), figures / "examples.png"))
                     if len(panel["crops"]) else "<p>No memorized crop.</p>"))
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


def _score_intro(config: dict) -> str:
    p = config["score"]["p"]
    return (f"<p>Déjà vu score = acc_target − acc_reference on each model's top {p:.0%} most "
            "confident crops, swap-averaged over (A attacked, target A) and (B attacked, target "
            "B), with a bootstrap 95% interval. Controls: <b>heldout</b> attacks images neither "
            "model saw; <b>untrained</b> uses the randomly initialised models. Both should read "
            "about zero; a real score is clearly above them, with memorized &gt; "
            "misrepresented.</p>")
