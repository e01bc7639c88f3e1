"""The mitigation example (config/mitigation.yaml) at several data/model seeds: what each
variant of VICReg's training changes in déjà vu score and in utility against the default,
and where the six methods sit, at the last epoch, projector embedding, p = score.p; and
the score and LayerMem along depth (definitions §11).

Each seed is a scratch copy of the workflow run with `dataset.seed`, `split.seed` and
`train.seeds` set to it (as bench/known_answer.py does), then the summaries are read:

    python bench/mitigation.py                       # seeds 0 1 2: hours on 2 cores
    python bench/mitigation.py --seeds 0 --keep runs/mitigation
    python bench/mitigation.py --epochs 100          # a shorter recipe: NOT the docs' figures

A `--keep` folder run again is reused (only what is missing is computed), so the seeds can
be run one at a time and read together: `--seeds 0 1 2 --keep runs/mitigation` afterwards.

A variant's change per seed comes with its paired bootstrap interval (definitions §10);
across seeds the table gives the mean and the seeds whose interval lies wholly below zero
(a reduction) or above it. It fails when a run lacks a variant's or a method's rows; with
`--check`, also when a finding of the docs does not hold at a seed (`findings`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml
from scratch import REPO, copy_workflow, seeded, snakemake

sys.path.insert(0, str(REPO))  # the checkout's package, installed or not

from dejavu.core.layers import depth, parse  # noqa: E402

UTILITIES = ("probe_test_acc", "knn_test_acc")


def run(seed: int, cores: int, work: Path, epochs: int | None) -> pd.DataFrame:
    copy_workflow(work)
    seed_file = seeded(work, seed, **({"epochs": epochs, "checkpoints": []} if epochs else {}))
    snakemake(work, f"-c{cores}", "--rerun-incomplete", "--configfile",
              "config/mitigation.yaml", seed_file)
    return pd.read_csv(work / "results" / "summary.csv").assign(data_seed=seed)


def last_real(summary: pd.DataFrame) -> pd.DataFrame:
    """The real test's rows at each run's last epoch, every embedding."""
    real = summary[summary["control"] == "none"]
    return real[real["epoch"] == real.groupby(["data_seed", "method", "variant"])["epoch"]
                .transform("max")]


def depth_table(rows: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """Per method and variant, the mean of `value` over seeds at each embedding, the
    columns in depth order (input to output; definitions §11)."""
    table = rows.pivot_table(index=["method", "variant"], columns="embedding", values=value,
                             aggfunc="mean")
    return table[sorted(table.columns, key=depth)].reset_index()


def variant_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant: mean change over seeds and the seeds whose interval excludes zero."""
    out = []
    for variant, part in rows[rows["variant"] != "default"].groupby("variant"):
        row = {"variant": variant, "seeds": len(part)}
        for name in ("score", *UTILITIES):
            change = part[f"{name}_change"]
            row[f"{name}_change"] = change.mean()
            row[f"{name}_below0"] = int((part[f"{name}_change_ci_high"] < 0).sum())
            row[f"{name}_above0"] = int((part[f"{name}_change_ci_low"] > 0).sum())
        out.append(row)
    return pd.DataFrame(out)


def method_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method at the default: score, its spread over seeds, utility, frontier count."""
    default = rows[rows["variant"] == "default"]
    default = default.assign(frontier=default["frontier"].eq(True))  # read back: True/False/NaN
    grouped = default.groupby("method")
    return pd.DataFrame({"score": grouped["score"].mean(), "score_sd": grouped["score"].std(),
                         "probe_test_acc": grouped["probe_test_acc"].mean(),
                         "knn_test_acc": grouped["knn_test_acc"].mean(),
                         "on_frontier": grouped["frontier"].sum().astype(int),
                         "seeds": grouped.size()}).reset_index()


def missing(rows: pd.DataFrame, config: dict) -> list[str]:
    """Variant/method rows the config asks for that a seed's summary lacks."""
    wanted = [("default", m) for m in config["train"]["methods"]]
    wanted += [(v["name"], m) for v in config["variants"] for m in v["methods"]]
    return [f"seed {seed}: {variant} {method}" for seed, part in rows.groupby("data_seed")
            for variant, method in wanted
            if part[(part["variant"] == variant) & (part["method"] == method)].empty]


# What held at every seed of the docs' run (docs/mitigations.md), asserted by --check at each
# seed run: (variant, measure) whose change against default is below zero
LOWERS = [("crops_large", "score"), ("invariance_low", "score"), ("narrow", "probe_test_acc")]
RISING = ("backbone", "hidden1", "hidden2", "projector")  # LayerMem's gap grows along these


def findings(every: pd.DataFrame) -> list[str]:
    """The findings that break, at any seed: each of LOWERS below zero (projector
    embedding); VICReg's default projector scoring above each of its backbone's stages;
    LayerMem's training-minus-held-out gap rising along RISING for every method and
    variant. `every`: last_real's rows, every embedding."""
    broken = []
    projector = every[every["embedding"] == "projector"]
    for variant, measure in LOWERS:
        for _, row in projector[projector["variant"] == variant].iterrows():
            if not row[f"{measure}_change"] < 0:
                broken.append(f"seed {row['data_seed']}: {variant} changes {measure} by "
                              f"{row[f'{measure}_change']:+.3f}, not below zero")
    for seed, part in every.groupby("data_seed"):
        score = part[(part["method"] == "vicreg") & (part["variant"] == "default")] \
            .set_index("embedding")["score"]
        stages = [name for name in score.index if parse(name)[0] in ("block", "backbone")]
        if stages and not score["projector"] > score[stages].max():
            broken.append(f"seed {seed}: VICReg's projector {score['projector']:+.3f} not above "
                          f"its backbone's stages (up to {score[stages].max():+.3f})")
        gap = part.assign(gap=part["layermem_train"] - part["layermem_heldout"])
        for (method, variant), run_rows in gap.groupby(["method", "variant"]):
            along = run_rows.set_index("embedding")["gap"].reindex(list(RISING))
            if along.notna().all() and not along.is_monotonic_increasing:
                broken.append(f"seed {seed}: {method} [{variant}] LayerMem gap along "
                              f"{'/'.join(RISING)} is not rising: "
                              + " ".join(f"{v:+.4f}" for v in along))
    return broken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="override train.epochs (a quicker check)")
    parser.add_argument("--keep", type=Path, help="run here and keep it (default: temp dirs)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless the docs' findings hold at every seed run")
    args = parser.parse_args()
    summaries = []
    for seed in args.seeds:
        if args.keep:
            work = args.keep / f"seed{seed}"
            work.mkdir(parents=True, exist_ok=True)
            summaries.append(run(seed, args.cores, work, args.epochs))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                summaries.append(run(seed, args.cores, Path(tmp), args.epochs))
    every = last_real(pd.concat(summaries, ignore_index=True))
    rows = every[every["embedding"] == "projector"]
    config = yaml.safe_load((REPO / "config" / "mitigation.yaml").read_text())
    print(f"seeds {args.seeds}, epoch {int(rows['epoch'].max())}, p = {rows['p'].iloc[0]}, "
          f"projector embedding")
    print("\nVICReg variants against default (mean change over seeds; seeds whose 95% "
          "interval lies below / above zero):")
    print(variant_table(rows).to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    print("\nMethods at the default:")
    print(method_table(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nDéjà vu score along depth (mean over seeds), input to output:")
    print(depth_table(every).to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    if every["layermem_train"].notna().any():
        print("\nLayerMem along depth: mean m of training minus held-out images:")
        gap = every.assign(gap=every["layermem_train"] - every["layermem_heldout"])
        print(depth_table(gap, "gap").to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    gaps = missing(rows, config)
    if gaps:
        sys.exit("rows missing from the summaries: " + ", ".join(gaps))
    if args.check:
        broken = findings(every)
        print("\nfindings: " + ("hold" if not broken else "BROKEN\n  " + "\n  ".join(broken)))
        sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
