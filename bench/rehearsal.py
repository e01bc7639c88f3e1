"""The ImageNet-shaped rehearsal: every stage at ImageNet's row and class counts on a CPU.

Runs the real workflow with config/rehearsal.yaml over config.yaml (1,000 classes, 1.28M
index rows, 600,000 attacked crops, a 631,000-image public set, k = 100, 1,000 bootstrap
resamples, both embeddings, the one-model test and SSLMem, at 16 px with a width-4 model;
about an hour on 2 cores), then prints for every job its peak RSS (Snakemake's benchmark
file) beside the mem_mb it declared, and its wall time beside the runtime it declared. The
target: every peak below its declaration by at least MARGIN. Exits 1 where one is not.

    python bench/rehearsal.py --keep runs/rehearsal      # run (or finish) and report
    python bench/rehearsal.py --report runs/rehearsal    # report a finished run

The whole run asks Snakemake to keep its jobs' declared memory under `--mem-mb` together
(default 20,000 of this machine's 24 GB). `--small DIR` also runs (or reads) the same
config at a twentieth of the rows in DIR and prints each rule's per-row slope: its peak's
growth between the two runs over the growth of the rows it reads (index rows for the
dataset, split and public-set stages, attacked crops for the rest), in bytes per row.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd
from scratch import copy_workflow, snakemake

MARGIN = 0.9  # a peak may reach 90 % of what its job declared


SMALL = 20  # the small run's rows: a twentieth
# Rules whose rows are the index's (or the public set's, which grows with it); the others
# read the attacked crops
INDEX_RULES = {"synth", "split", "index", "embed", "embed_finalize"}


def run(work: Path, mem_mb: int, small: bool = False) -> None:
    copy_workflow(work)
    overlay = ["config/rehearsal.yaml"]
    if small:
        (work / "small.yaml").write_text(
            f"dataset: {{images_per_class: {1281 // SMALL}}}\n"
            f"split: {{npc: [{300 // SMALL}], public_test_per_class: {50 // SMALL}}}\n")
        overlay.append("small.yaml")
    snakemake(work, "-c2", "--configfile", "config.yaml", *overlay,
              "--resources", f"mem_mb={mem_mb}", "--rerun-triggers", "mtime")


def rows(work: Path) -> dict[str, int]:
    """The run's index rows and attacked crops, from its split table."""
    split = pd.read_parquet(next(work.glob("results/*/split/n*/split.parquet")),
                            columns=["row", "attacked"])
    return {"index": int(split["row"].nunique()), "crops": int(split["attacked"].sum())}


def slopes(big: Path, small: Path) -> pd.DataFrame:
    """Per rule: the largest peak of each run, and bytes per row between them."""
    counts = {name: rows(work) for name, work in (("big", big), ("small", small))}
    peaks = {name: jobs(work).groupby("rule")["peak_mb"].max()
             for name, work in (("big", big), ("small", small))}
    table = pd.DataFrame(peaks).dropna()
    unit = ["index" if rule in INDEX_RULES else "crops" for rule in table.index]
    grown = [counts["big"][u] - counts["small"][u] for u in unit]
    table["per"] = unit
    table["bytes_per_row"] = (table["big"] - table["small"]) * 2**20 / grown
    return table


def declarations(log: str):
    """(benchmark path, {resource: value}) of every job a Snakemake log shows."""
    path = None
    for line in log.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            path = None
        elif line.startswith("benchmark: "):
            path = line.removeprefix("benchmark: ")
        elif line.startswith("resources: ") and path:
            yield path, dict(re.findall(r"(\w+)=([^,]+)", line.removeprefix("resources: ")))
            path = None


def jobs(work: Path) -> pd.DataFrame:
    """Every job of the run's Snakemake logs: rule, peak RSS and wall time (its benchmark
    file), and the mem_mb and runtime (minutes) it declared."""
    rows = {}
    for log in sorted((work / ".snakemake" / "log").glob("*.log")):
        for path, declared in declarations(log.read_text()):
            if not (work / path).is_file():
                continue  # a job that did not finish in that run
            bench = pd.read_csv(work / path, sep="\t")
            rows[path] = {"rule": path.split("/benchmarks/")[1].split("/")[0],
                          "peak_mb": float(bench["max_rss"].iloc[0]),
                          "declared_mb": int(declared["mem_mb"]),
                          "wall_min": float(bench["s"].iloc[0]) / 60,
                          "runtime_min": int(declared.get("runtime", 0)), "job": path}
    return pd.DataFrame(list(rows.values()))


def report(work: Path) -> bool:
    table = jobs(work)
    table["share"] = table["peak_mb"] / table["declared_mb"]
    per_rule = table.sort_values("share").groupby("rule").tail(1).sort_values("rule")
    print(f"{'rule':15s} {'jobs':>4s} {'peak MB':>8s} {'declared':>8s} {'share':>6s} "
          f"{'wall min':>8s} {'runtime':>7s}  (the job of each rule nearest its memory)")
    for _, job in per_rule.iterrows():
        n = int((table["rule"] == job["rule"]).sum())
        print(f"{job['rule']:15s} {n:4d} {job['peak_mb']:8.0f} {job['declared_mb']:8d} "
              f"{job['share']:6.2f} {job['wall_min']:8.1f} {job['runtime_min']:7d}")
    over = table[table["share"] > MARGIN]
    late = table[table["wall_min"] > table["runtime_min"]]
    print(f"\n{len(table)} jobs; {len(over)} over {MARGIN:.0%} of their declared memory, "
          f"{len(late)} past their declared runtime")
    for _, job in pd.concat([over, late]).drop_duplicates("job").iterrows():
        print(f"  {job['job']}: peak {job['peak_mb']:.0f} of {job['declared_mb']} MB, "
              f"{job['wall_min']:.1f} of {job['runtime_min']} min")
    return over.empty and late.empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--keep", type=Path, help="run here and keep it")
    where.add_argument("--report", type=Path, help="only report this finished run")
    parser.add_argument("--mem-mb", type=int, default=20_000)
    parser.add_argument("--small", type=Path, help="the run at a twentieth of the rows")
    args = parser.parse_args()
    if not (args.report or args.keep):
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), args.mem_mb)
            sys.exit(0 if report(Path(tmp)) else 1)
    big = args.report or args.keep
    if args.keep:
        run(big, args.mem_mb)
    ok = report(big)
    if args.small:
        if args.keep or not (args.small / "results").is_dir():
            run(args.small, args.mem_mb, small=True)
        print(f"\nper-row slopes against the run at 1/{SMALL} of the rows ({args.small}):")
        print(slopes(big, args.small).round(0).to_string())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
