"""The demo's known answer at one data/model seed: the demo config (config.yaml) with
`dataset.seed`, `split.seed` and `train.seeds` set to the seed, run in a scratch copy of the
workflow, and the rows docs/benchmarks.md tabulates (last epoch, p = score.p).

    python bench/known_answer.py --seed 0            # about 12 minutes on 2 cores
    python bench/known_answer.py --seed 1 --keep runs/seed1
    python bench/known_answer.py --seed 2 --overlay tests/known_answer.yaml

`--overlay` layers a config file over the demo (tests/known_answer.yaml is the test suite's
known-answer run: the demo's training and decoders, a cheaper correlation classifier, and
epoch 100 kept too); then the rows of every stage the test asserts on are printed as well.
The other four SSL methods, with their findings checked (exit 1 if one breaks):

    python bench/known_answer.py --seed N --overlay bench/methods.yaml --check

The RCDM decoders' known answer at the demo's scale (their quality margins, `rcdm_findings`)
is checked here, not in the test suite (issue 31: two decoders of 600 steps were 770 of the
suite's ~3,800 CPU-s); the suite tests the decoders on the tiny run and with a known answer
at small scale (tests/test_rcdm.py):

    python bench/known_answer.py --seed 0 --check     # the demo itself, decoders included

A `--keep` folder run again is reused (only what is missing is computed), so the same
command re-prints a finished run -- at the commit it ran at: the workflow is copied in
again, and a rule whose code or parameters changed since reruns its jobs.

Seed 0 is the shipped demo, so its row is also what `snakemake --cores 2` writes. Numbers
are bit-for-bit reproducible on the same machine kind with the same thread counts; on a CPU
whose kernels differ (another vendor or vector width) training takes another path and the
scores move within the seed-to-seed noise (about ±0.05).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
from scratch import copy_workflow, seeded, snakemake


def run(seed: int, cores: int, work: Path, overlay: Path | None = None) -> pd.DataFrame:
    copy_workflow(work)
    configs = []
    if overlay:
        shutil.copy(overlay, work / "overlay.yaml")
        configs.append("overlay.yaml")
    snakemake(work, f"-c{cores}", "--rerun-incomplete", "--configfile", *configs,
              seeded(work, seed))
    return pd.read_csv(work / "results" / "summary.csv")


def table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per method and embedding: the real score with its interval, the controls,
    the partition, and the utility (linear probe and k-NN test accuracy) where computed."""
    last = summary["epoch"].max()
    keys = ["method", "variant", "embedding"] if summary.get(
        "variant", pd.Series(["default"])).nunique() > 1 else ["method", "embedding"]
    rows = []
    for names, part in summary.groupby(keys):
        at = part[part["epoch"].isin([0, last])].set_index("control")
        real = at.loc["none"]
        rows.append({**dict(zip(keys, names)), "score": real["score"],
                     "ci": f"[{real['score_ci_low']:.3f}, {real['score_ci_high']:.3f}]",
                     "heldout": at.loc["heldout", "score"] if "heldout" in at.index else None,
                     "untrained": at.loc["untrained", "score"]
                     if "untrained" in at.index else None,
                     "memorized": real["memorized"], "misrepresented": real["misrepresented"],
                     **{name: real.get(name) for name in ("probe_test_acc", "knn_test_acc")}})
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def stage_answers(summary: pd.DataFrame, work: Path) -> dict:
    """What tests/test_sweep.py asserts besides `table`: the projector score (the backbone's,
    for a method without a projector) at each epoch,
    the one-model test and SSLMem at the last epoch, and the RCDM decoders' quality (of a
    run of one method)."""
    attacked = "projector" if (summary["embedding"] == "projector").any() else "backbone"
    real = summary[(summary["control"] == "none") & (summary["embedding"] == attacked)]
    last = real[real["epoch"] == real["epoch"].max()].iloc[0]
    heldout = summary[(summary["control"] == "heldout") & (summary["embedding"] == attacked)
                      & (summary["epoch"] == last["epoch"])].iloc[0]
    answers = {f"score at epoch {e}": s for e, s in real.set_index("epoch")["score"].items()}
    columns = {  # where the run computed them
        "one-model score": lambda: last["onemodel_score"],
        "one-model held-out": lambda: heldout["onemodel_score"],
        "classifier - reference k-NN accuracy":
            lambda: last["acc_classifier_all"] - last["acc_reference_all"],
        "SSLMem train - held-out": lambda: last["sslmem_train"] - last["sslmem_heldout"],
        "SSLMem AUC": lambda: last["sslmem_auc"],
        "linear probe test accuracy": lambda: last["probe_test_acc"],
        "k-NN test accuracy": lambda: last["knn_test_acc"]}
    for name, value in columns.items():
        try:
            if pd.notna(value()):
                answers[name] = value()
        except KeyError:
            pass
    for path in sorted((work / "results").glob("*/rcdm/*/*/*/*/*/epoch*/*.json")):
        quality = json.loads(path.read_text())
        for decoder, own in quality["self"].items():
            for key in ("top1_retrieval", "mean_rank", "class_recovery"):
                answers[f"RCDM {decoder} self {key}"] = own[key]
        memorized = quality["attack"]["memorized"]
        answers["RCDM memorized: target - reference"] = (memorized["target"]
                                                         - memorized["reference"])
    return answers


# What every self-supervised method showed on the benchmark (`--check`; the four of
# bench/methods.yaml measured at seeds 0, 1, 2, docs/mitigations.md): a projector score above
# zero and above its held-out control, and controls near zero. Whether its interval clears
# zero is reported, not checked: DINO's did not at seed 1 (+0.040, [-0.040, 0.115]). The
# supervised baseline is read by its own overlay's rows (label memorization). A method
# without a projector (MAE, bench/mae.yaml: written before its first run) is read at its
# one embedding, the backbone's.
MAX_CONTROL = 0.10  # |score| of the held-out and untrained controls, as tests/test_sweep.py


def attacked_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Each self-supervised method's row of its projector, else of its backbone."""
    ssl = rows[rows["method"] != "supervised"]
    has_projector = set(ssl.loc[ssl["embedding"] == "projector", "method"])
    return ssl[(ssl["embedding"] == "projector")
               | ((ssl["embedding"] == "backbone") & ~ssl["method"].isin(has_projector))]


def findings(rows: pd.DataFrame) -> list[str]:
    """What breaks the findings above, one line each (empty: they hold)."""
    broken = []
    for _, row in attacked_rows(rows).iterrows():
        heldout = row.get("heldout", float("nan"))
        if row["score"] <= 0 or (pd.notna(heldout) and row["score"] <= heldout):
            broken.append(f"{row['method']}: {row['embedding']} score {row['score']:+.3f} not "
                          f"above zero and its held-out control ({heldout:+.3f})")
        for control in ("heldout", "untrained"):
            if control in row and pd.notna(row[control]) and abs(row[control]) > MAX_CONTROL:
                broken.append(f"{row['method']}: {control} control {row[control]:+.3f} "
                              f"beyond ±{MAX_CONTROL}")
    return broken


# The decoders' quality on the demo's models (50 per class, epoch 400, the demo's decoder
# settings), measured on data/model seeds 0 and 1 (docs/stages.md, "RCDM"), decoders A / B:
# self top-1 retrieval 0.17 / 0.10 and 0.15 / 0.11; mean rank 0.13 / 0.15 and 0.17 / 0.19;
# class read 0.48 / 0.46 and 0.40 / 0.41. Memorized crops, samples judged the true class,
# target / reference: 0.80 / 0.59 and 0.73 / 0.55. (Until issue 31 these margins were
# tests/test_sweep.py's.)
MIN_SELF_TOP1 = 0.05        # share of samples nearest their own embedding (chance 0.01)
MAX_SELF_RANK = 0.30        # mean rank / (n - 1) of the own embedding (chance 0.5)
MIN_SELF_CLASS = 0.30       # k-NN on X reads the true class (chance 0.1)
MIN_MEMORIZED_GAP = 0.08    # memorized crops: target decoder minus reference decoder
MIN_MEMORIZED_IMAGES = 8


def rcdm_findings(quality: dict) -> list[str]:
    """What breaks the decoders' known answer in one quality file (`rcdm/.../*.json`), one
    line each (empty: it holds)."""
    broken = []
    for decoder, own in quality["self"].items():
        if own["top1_retrieval"] < MIN_SELF_TOP1:
            broken.append(f"decoder {decoder}: self top-1 retrieval {own['top1_retrieval']:.3f}"
                          f" below {MIN_SELF_TOP1}")
        if own["mean_rank"] > MAX_SELF_RANK:
            broken.append(f"decoder {decoder}: self mean rank {own['mean_rank']:.3f} above "
                          f"{MAX_SELF_RANK}")
        if own["class_recovery"] < MIN_SELF_CLASS:
            broken.append(f"decoder {decoder}: class read {own['class_recovery']:.3f} below "
                          f"{MIN_SELF_CLASS}")
    memorized = quality["attack"]["memorized"]
    gap = memorized["target"] - memorized["reference"]
    if memorized["images"] < MIN_MEMORIZED_IMAGES or gap < MIN_MEMORIZED_GAP:
        broken.append(f"memorized crops: {memorized['images']} images, target - reference "
                      f"decoder {gap:+.3f} (at least {MIN_MEMORIZED_IMAGES} and "
                      f"{MIN_MEMORIZED_GAP})")
    return broken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run here and keep it (default: a temp dir)")
    parser.add_argument("--overlay", type=Path, help="a config file layered over the demo")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless every SSL method's findings hold (`findings`)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        summary = run(args.seed, args.cores, work, args.overlay and args.overlay.resolve())
        one_method = summary["method"].nunique() == 1
        answers = stage_answers(summary, work) if args.overlay and one_method else {}
        decoders = [json.loads(path.read_text()) for path in
                    sorted((work / "results").glob("*/rcdm/*/*/*/*/*/epoch*/*.json"))]
    print(f"seed {args.seed}, epoch {summary['epoch'].max()}, p = {summary['p'].iloc[0]}")
    rows = table(summary)
    print(rows.to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    for name, value in answers.items():
        print(f"{name}: {value:.4f}")
    if args.check:
        broken = findings(rows) + [line for quality in decoders
                                   for line in rcdm_findings(quality)]
        print("findings: " + ("hold" if not broken else "BROKEN\n  " + "\n  ".join(broken)))
        sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
