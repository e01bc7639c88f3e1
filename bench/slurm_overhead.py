"""Per-job overhead of the workflow on SLURM, from a finished `snakemake --profile slurm` run.

For the jobs submitted from a working directory (still listed by squeue: within the
cluster's MinJobAge), prints per rule the median wait from submission to start, the median
SLURM run time (start to end: job-step start-up, Snakemake parsing the workflow, the
script), and the median time of the script itself (the rule's benchmark files); the
difference is the fixed cost of a job, which shards should be sized against.

    python bench/slurm_overhead.py WORKDIR
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from statistics import median

import pandas as pd


def main() -> None:
    workdir = Path(sys.argv[1]).resolve()
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%Z|%k|%V|%S|%e|%T"],
                         capture_output=True, text=True, check=True).stdout
    rows = defaultdict(list)
    for line in out.splitlines():
        job, where, comment, submit, start, end, state = line.split("|")
        if Path(where).resolve() != workdir or state != "COMPLETED":
            continue
        rule = comment.split("_wildcards_")[0].removeprefix("rule_")
        t = [datetime.fromisoformat(v) for v in (submit, start, end)]
        rows[rule].append(((t[1] - t[0]).total_seconds(), (t[2] - t[1]).total_seconds()))
    print(f"{'rule':16s} {'jobs':>5s} {'wait s':>7s} {'SLURM run s':>12s} {'script s':>9s} "
          f"{'overhead s':>11s}")
    overheads = []
    for rule, times in sorted(rows.items()):
        tsvs = list(workdir.glob(f"results/*/benchmarks/{rule}/**/*.tsv"))
        scripts = [pd.read_csv(f, sep="\t")["s"].iloc[0] for f in tsvs]
        script = median(scripts) if scripts else float("nan")
        wait, run = median(t[0] for t in times), median(t[1] for t in times)
        overheads += [t[1] - script for t in times]
        print(f"{rule:16s} {len(times):5d} {wait:7.1f} {run:12.1f} {script:9.1f} "
              f"{run - script:11.1f}")
    print(f"median overhead per job: {median(overheads):.1f} s over {len(overheads)} jobs")


if __name__ == "__main__":
    main()
