"""The report rule: one self-contained HTML page, every figure embedded as a PNG (and written
under `figures/` as PNG and SVG), so the page can be mailed around.

The page reads `summary.csv` as users do, and the files behind the figures (curves,
per-image samples, k-NN tables, RCDM samples), each an input of the rule.
"""

from __future__ import annotations

import html
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import yaml

from ..attack.score import SHARES
from ..core.provenance import environment, version_of
from . import figures as fig
from . import layer_figures
from . import loading, mitigation, tables
from .figures import img
from .loading import files
from .removal_figures import removal_sections
from .unit_figures import unitmem_sections
from .vlm_figures import vlm_sections
from .summary import onemodel_parts, sslmem_figures

Section = tuple[str, str]


def run(inputs: dict, outputs: dict, *, p: float, heldout_fraction, first: dict,
        sizes: list[int], sslmem_runs: list[dict], benchmarks: str, provenance: dict,
        sweeps: list[dict] = ()) -> None:
    out = Path(outputs["figures"])
    out.mkdir(parents=True, exist_ok=True)
    summary = pd.read_csv(inputs["summary"])
    onemodel, samples = onemodel_parts(inputs)
    sslmem = sslmem_figures(inputs, samples, first, sslmem_runs)
    paired = summary[summary["score"].notna()]  # the two-model test ran (not external)
    sections = two_model_sections(inputs, paired, out, p, heldout_fraction)
    sections += sweep_sections(paired, sweeps, out)
    sections += onemodel_sections(onemodel, samples, paired, out, p, first)
    sections += sslmem_sections(sslmem, files(inputs, "sslmem"), out)
    sections += unitmem_sections(inputs, out)
    sections += removal_sections(inputs, out)
    sections += vlm_sections(inputs, out)
    sections += rcdm_sections(inputs, out)
    sections += data_sections(inputs, sizes, benchmarks)
    sections.append(("Provenance", "<pre>" + html.escape(yaml.safe_dump(
        provenance_of(provenance), sort_keys=False)) + "</pre>"))
    Path(outputs["html"]).write_text(render_html(sections))


def two_model_sections(inputs: dict, paired: pd.DataFrame, out: Path, p: float,
                       heldout_fraction) -> list[Section]:
    """Scores, methods, embeddings, trends, Figure 3 curves, partition and examples of the
    two-model test (none when only external models were tested)."""
    if paired.empty:
        return [("Scores", "<p>No model pair was trained (train.methods is empty): only the "
                 "one-model test ran.</p>")]
    intro = score_intro(p)
    if "heldout" not in set(paired["control"]):
        intro += ("<p><b>The held-out control was skipped</b>: no annotated image was held "
                  f"out (split.heldout_fraction = {heldout_fraction}), as on ImageNet, where "
                  "box images are scarce (definitions §1).</p>")
    sections = [("Scores", intro + table_html(paired[[
        "method", "backbone", "variant", "train_size", "seed", "epoch", "embedding", "k",
        "crop_mode",
        "control", "n_attacked", "acc_target", "acc_reference", "score", "score_ci_low",
        "score_ci_high", *SHARES, "probe_gap"]]))]
    methods = tables.method_table(paired)
    methods.to_csv(out / "method_comparison.csv", index=False)
    sections.append(("Methods compared at the last epoch (score at p with its bootstrap 95% "
                     "interval, mean over seeds; linear probe on the backbone)",
                     table_html(methods)))
    embeddings = tables.embedding_table(paired)
    embeddings.to_csv(out / "backbone_vs_projector.csv", index=False)
    sections.append(("Backbone vs projector (the same models' score from each embedding)",
                     table_html(embeddings)))
    sections += depth_sections(paired, out)
    sections += trend_sections(paired, out)
    sections += frontier_sections(paired, out)
    sections += curve_sections(inputs, out)
    sections.append(("Sample partition at the last epoch",
                     img(fig.figure_png(fig.plot_partition(tables.last_epoch(paired)),
                                        out / "partition.png"))))
    panel = loading.example_panel(inputs["knn_target"], inputs["knn_reference"],
                                  inputs["crops_store"], inputs["images"], inputs["index"])
    sections.append(("Most confident memorized crops (set A): crop, image, nearest public "
                     "images under the target (T) and the reference (R) with their labels",
                     img(fig.figure_png(fig.plot_examples(**panel), out / "examples.png"))
                     if panel["crops"] else "<p>No memorized crop.</p>"))
    return sections


def depth_sections(paired: pd.DataFrame, out: Path) -> list[Section]:
    """The score (and LayerMem) along depth, where more than one embedding was attacked:
    each pair at its last epoch, the first crop mode and k."""
    if paired["embedding"].nunique() < 2:
        return []
    rows = tables.last_epoch(paired)
    rows = rows[(rows["crop_mode"] == rows["crop_mode"].iloc[0]) & (rows["k"] == rows["k"].iloc[0])]
    return [("Along depth: where memorization appears (definitions §11)",
             "<p>The déjà vu score at p of the same model pair from each embedding, input to "
             "output (<code>block&lt;i&gt;</code>: backbone stage i pooled; "
             "<code>hidden&lt;i&gt;</code>: projector hidden layer i), with the held-out "
             "control, and SSLMem computed at each embedding (LayerMem).</p>"
             + img(fig.figure_png(layer_figures.plot_depth(rows), out / "depth.png")))]


def trend_sections(paired: pd.DataFrame, out: Path) -> list[Section]:
    """Figures 4 and 5 along epochs and along train-set size, where there is a trend."""
    sections = []
    for along, name in (("epoch", "epochs"), ("train_size", "size")):
        axis = fig.axis_name(along)
        if paired[along].nunique() < 2:
            key = "train.checkpoints" if along == "epoch" else "split.npc"
            sections.append((f"Trends along {axis} (Figures 4, 5)",
                             f"<p>Only one value of {along} is configured; sweep it ({key}) "
                             "to see the trend.</p>"))
            continue
        sections.append((f"Déjà vu score and linear-probe gap vs {axis} (Figure 4)",
                         img(fig.figure_png(fig.plot_score_trends(paired, along),
                                            out / f"score_vs_{name}.png"))))
        sections.append((f"Memorized, misrepresented, correlated vs {axis} (Figure 5)",
                         img(fig.figure_png(fig.plot_share_trends(paired, along),
                                            out / f"shares_vs_{name}.png"))))
    return sections


def sweep_sections(paired: pd.DataFrame, sweeps: list[dict], out: Path) -> list[Section]:
    """One figure per numeric sweep (`variants.sweep_specs`), its table as a CSV."""
    sections = []
    for spec in sweeps:
        rows = tables.sweep_rows(paired, spec)
        if rows.empty:
            continue
        name = spec["setting"].replace(".", "_")
        rows.to_csv(out / f"sweep_{name}.csv", index=False)
        sections.append((f"Sweep of {spec['setting']}: déjà vu score, its held-out control "
                         f"and the linear probe (the paper's hyperparameter figures)",
                         img(fig.figure_png(layer_figures.plot_sweep(rows, spec["setting"]),
                                            out / f"sweep_{name}.png"))))
    return sections


def frontier_sections(paired: pd.DataFrame, out: Path) -> list[Section]:
    """The privacy-utility frontier of every evaluated run, and each variant's change
    against default (definitions §10); none without a utility (probe off)."""
    real = paired[paired["control"] == "none"]
    if real[["probe_test_acc", "knn_test_acc"]].isna().all().all():
        return []
    sections = [("Privacy-utility frontier (definitions §10)", FRONTIER_INTRO + img(
        fig.figure_png(layer_figures.plot_frontier(real), out / "frontier.png")))]
    changes = real[real["variant"] != "default"].dropna(subset=["score_change"])
    if not changes.empty:
        table = tables.last_epoch(changes)[[
            "method", "backbone", "variant", "train_size", "seed", "epoch", "embedding", "k",
            "crop_mode", "score", *mitigation.CHANGE_COLUMNS]]
        table.to_csv(out / "mitigations.csv", index=False)
        sections.append(("Mitigations: each variant's change against default at the last "
                         "epoch (paired bootstrap 95% intervals)", table_html(table)))
    return sections


FRONTIER_INTRO = (
    "<p>Each point is one evaluated run (method, variant, epoch, size, seed): its déjà vu "
    "score at p with the bootstrap interval, against the accuracy of a linear probe and of "
    "k-NN on the public test split, one row of panels per embedding attacked (the accuracy "
    "is the model's, the score the embedding's). A run is Pareto-optimal (ringed) when no "
    "other run at that embedding has both higher accuracy and a lower score: the choices "
    "worth considering when trading memorization against utility.</p>")


def curve_sections(inputs: dict, out: Path) -> list[Section]:
    """Figure 3 per method, backbone, size, embedding, k and crop mode, seeds together."""
    curves = loading.labelled_parts(files(inputs, "scores"), files(inputs, "curves"),
                                    tables.KEYS + ["epoch"])
    keys = [k for k in tables.KEYS if k != "seed"]
    sections = []
    for values, group in curves.groupby(keys, sort=False):
        last = group.groupby("seed")["epoch"].transform("max")
        shown = group[(group["epoch"] == last) | (group["control"] == "untrained")]
        title = ", ".join(f"{k}={v}" for k, v in zip(keys, values))
        png = fig.figure_png(fig.plot_curves(shown, textwrap.fill(
            f"{title}, epoch {last.max()}", 110)),
            out / ("curves_" + "_".join(str(v) for k, v in zip(keys, values)
                                        if (k, v) != ("variant", "default")) + ".png"))
        sections.append((f"Accuracy vs confidence (Figure 3): {title}", img(png)))
    return sections


def onemodel_sections(onemodel: pd.DataFrame, samples: pd.DataFrame, paired: pd.DataFrame,
                      out: Path, p: float, first: dict) -> list[Section]:
    """The one-model test: every row, the classifiers against the reference k-NN and the
    two-model test, and the memorization-confidence histograms."""
    if onemodel.empty:
        return []
    onemodel.to_csv(out / "onemodel.csv", index=False)
    table = onemodel[[c for c in ONEMODEL_SHOWN if c in onemodel]]
    sections = [("One-model test (definitions §5)", onemodel_intro(p) + table_html(table))]
    if not paired.empty:
        comparison = tables.onemodel_vs_two_model(onemodel, paired)
        comparison.to_csv(out / "onemodel_vs_two_model.csv", index=False)
        sections.append(("The correlation classifier against the reference model's k-NN, "
                         "and the two tests' calls", table_html(comparison)))
    last = tables.last_epoch(samples)
    shown = last[(last["crop_mode"] == first["crop_mode"])
                 & (last["embedding"] == first["embedding"]) & (last["k"] == first["k"])]
    for keys, group in shown.groupby(tables.RUN_KEYS, sort=False):
        run = dict(zip(tables.RUN_KEYS, keys))
        name = f"memorization_{run_name(run)}"
        title = (f"{run_title(run)}, {first['embedding']}, "
                 f"k={first['k']}")
        sections.append((f"One-model memorization confidence: {title}",
                         img(fig.figure_png(fig.plot_memorization(group, title),
                                            out / f"{name}.png"))))
    return sections


ONEMODEL_SHOWN = (
    "method", "backbone", "variant", "train_size", "seed", "epoch", "embedding", "k",
    "crop_mode", "control", "classifier", "n_attacked", "acc_target", "acc_classifier", "score",
    "score_ci_low", "score_ci_high", "acc_target_all", "acc_classifier_all",
    "memorized_one_model", "memorized_two_model", "memorized_overlap", "memorization_mean")


def sslmem_sections(sslmem: pd.DataFrame, files: list[str], out: Path) -> list[Section]:
    """SSLMem per model pair and epoch, and its distribution at each pair's last epoch."""
    if sslmem.empty:
        return []
    sslmem.to_csv(out / "sslmem.csv", index=False)
    sections = [("SSLMem (definitions §6)", SSLMEM_INTRO + table_html(sslmem))]
    last = tables.last_epoch(sslmem).index
    for (i, row), path in zip(sslmem.iterrows(), files, strict=True):
        if i not in last:
            continue
        name = f"sslmem_{run_name(row)}"
        title = run_title(row)
        sections.append((f"SSLMem distribution: {title}", img(fig.figure_png(
            fig.plot_sslmem(pd.read_parquet(path), row.to_dict(), title), out / f"{name}.png"))))
    return sections


def rcdm_sections(inputs: dict, out: Path) -> list[Section]:
    """Reconstruction panels and the decoders' quality table (none when RCDM is off)."""
    quality_files = files(inputs, "rcdm_quality")
    if not quality_files:
        return []
    quality = tables.rcdm_quality_table(loading.rcdm_quality(quality_files))
    quality.to_csv(out / "rcdm_quality.csv", index=False)
    sections = [("RCDM decoders (definitions §7): self-reconstruction and what the attack's "
                 "samples show", RCDM_INTRO + table_html(quality))]
    for (_, run), table, samples in zip(quality.iterrows(), files(inputs, "rcdm_tables"),
                                        files(inputs, "rcdm_samples"), strict=True):
        name = run_name(run)
        title = run_title(run)
        stores = (table, samples, inputs["images"], inputs["index"])
        examples = loading.reconstruction_examples(*stores)
        sections.append((f"Reconstructions from background crops (set A attacked): {title}",
                         img(fig.figure_png(fig.plot_reconstructions(examples, title),
                                            out / f"rcdm_{name}.png"))
                         if examples else "<p>No memorized or correlated crop to show.</p>"))
        sections.append((f"Decoding public test images from their own embedding: {title}",
                         img(fig.figure_png(fig.plot_self_reconstructions(
                             loading.self_reconstructions(*stores)),
                             out / f"rcdm_self_{name}.png"))))
    return sections


def data_sections(inputs: dict, sizes: list[int], benchmarks: str) -> list[Section]:
    """Split sizes, crops that could not be made, the dataset's input problems, stage times."""
    counts = tables.crop_reject_counts(loading.crop_rejects(files(inputs, "crop_tables")))
    problems = tables.input_problems(pd.read_parquet(inputs["dataset_rejects"]))
    skipped = int(problems.loc[problems["action"] == "image skipped", "count"].sum())
    return [
        ("Split sizes per class",
         table_html(loading.split_sizes(files(inputs, "sizes"), sizes), "{:.0f}")),
        ("Attacked images without a valid crop", table_html(counts)),
        ("Dataset input problems", (
            f"<p>{skipped} files skipped; every problem is listed with its reason in "
            f"<code>{html.escape(inputs['dataset_rejects'])}</code> (set "
            f"<code>dataset.strict: true</code> to fail at the first one instead).</p>"
            + table_html(problems))),
        ("Wall time per stage (s)",
         table_html(tables.stage_times(loading.benchmark_times(benchmarks)), "{:.1f}")),
    ]


# ---------------------------------------------------------------- the page itself

def run_title(run) -> str:
    return (f"{fig.model_name(run['method'], run['backbone'], run['variant'])}, "
            f"{run['train_size']} per class, seed {run['seed']}, epoch {run['epoch']}")


def run_name(run) -> str:
    """A model pair in a figure's file name (its variant unless default)."""
    variant = "" if run["variant"] == "default" else f"_{run['variant']}"
    return f"{run['method']}_{run['backbone']}{variant}_n{run['train_size']}_s{run['seed']}"


def provenance_of(config: dict) -> dict:
    packages = {name: version_of(name) or "not installed"
                for name in ("dejavu-memorization", "torch", "torchvision", "snakemake", "zarr",
                             "numpy", "pandas", "pyarrow")}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    # the machine that wrote the report; each job's log names the device it ran on
    return {"git_commit": commit, "packages": packages, "environment": environment(),
            "config": config}


def table_html(table: pd.DataFrame, floats: str = "{:.3f}") -> str:
    if table.empty:
        return "<p><i>none</i></p>"
    return table.to_html(index=False, float_format=floats.format, border=0, classes="t")


def render_html(sections: list[Section]) -> str:
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "table.t{border-collapse:collapse;font-size:12px}"
             "table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd}"
             "img{max-width:100%}pre{font-size:11px;background:#f6f6f6;padding:.5em}")
    body = "\n".join(f"<h2>{html.escape(title)}</h2>\n{content}" for title, content in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>dejavu report</title>"
            f"<style>{style}</style></head><body><h1>Déjà vu memorization report</h1>"
            f"{body}</body></html>")


def score_intro(p: float) -> str:
    return (f"<p>Déjà vu score = acc_target − acc_reference on each model's top {p:.0%} most "
            "confident crops, swap-averaged over (A attacked, target A) and (B attacked, target "
            "B), with a bootstrap 95% interval. Controls: <b>heldout</b> attacks images neither "
            "model saw; <b>untrained</b> uses the randomly initialised models. Both should read "
            "about zero; a real score is clearly above them, with memorized &gt; "
            "misrepresented.</p>")


def onemodel_intro(p: float) -> str:
    return (f"<p>A correlation classifier g predicts the class from the background crop "
            f"alone, trained on the other training set's crops; one-model score = "
            f"acc_KNN_target − acc_g on each one's top {p:.0%} most confident crops (own "
            f"confidence), swap-averaged where the workflow trained the pair, with a "
            f"bootstrap 95% interval. <i>memorized_one_model</i>: target right, g wrong; "
            f"<i>memorized_two_model</i>: target right, reference wrong; overlap = both / "
            f"either. The held-out control attacks images neither the target nor g saw.</p>")


SSLMEM_INTRO = (
    "<p>m(x) = d_reference(x) − d_target(x), d = mean distance between the L2-normalised "
    "embedding of an attacked image and of augmented views of it (definitions §6). Positive "
    "on training images: the target is more invariant on what it saw. AUC = chance that a "
    "training image's m exceeds a held-out one's (0.5: no signal). By partition: mean m of "
    "the training images the two-model test calls memorized, misrepresented, correlated, "
    "unassociated; corr = point-biserial correlation of m with being memorized.</p>")

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
