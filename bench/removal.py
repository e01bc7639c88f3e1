"""The SSLMem paper's removal experiment on the synthetic benchmark: bench/removal.yaml (the
demo's VICReg run; A retrained without its 50, 100, 200 most memorized images by SSLMem, and
without as many random ones) at several data/model seeds, the linear probe's and the k-NN's
public-test accuracy per kind and count (mean over seeds and its standard error), and the
finding below checked against them.

    python bench/removal.py                          # seeds 0 1 2: about an hour on 2 cores
    python bench/removal.py --seeds 0 --keep runs/removal --check

Each seed is a scratch copy of the workflow run with `dataset.seed`, `split.seed` and
`train.seeds` set to it (as bench/sweeps.py does); a `--keep` folder is reused.

The finding, the paper's, written before the measurement (docs/removal.md gives what was
measured): removing the most memorized images costs more downstream accuracy than removing
as many random ones -- at the largest count, the seed-mean linear-probe accuracy after
memorized removal is below the accuracy after random removal (by more than zero). With
`--check` it exits 1 when that does not hold, whatever the measurement shows otherwise.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
from scratch import REPO, copy_workflow, seed_main, seeded, snakemake

sys.path.insert(0, str(REPO))  # the checkout's package, installed or not

from dejavu.data import removal  # noqa: E402

OVERLAY = REPO / "bench" / "removal.yaml"


def run(seed: int, work: Path) -> pd.DataFrame:
    copy_workflow(work)
    shutil.copy(OVERLAY, work / "removal.yaml")  # bench/ is not part of the copy
    seed_file = seeded(work, seed)
    snakemake(work, "-c2", "--rerun-incomplete", "--configfile", "removal.yaml", seed_file)
    return pd.read_csv(work / "results" / "synthetic" / "removal" / "removal.csv")


def table(results: pd.DataFrame) -> pd.DataFrame:
    """Per kind and count: both accuracies' seed means and standard errors."""
    probe = removal.curves(results, "probe_test_acc")
    knn = removal.curves(results, "knn_test_acc")
    keys = ["method", "backbone", "kind", "removed"]
    return probe.merge(knn, on=[*keys, "seeds"], suffixes=("_probe", "_knn"))


def findings(results: pd.DataFrame) -> list[str]:
    """What does not hold of the finding in the docstring, one sentence each."""
    probe = removal.curves(results).set_index(["kind", "removed"])["probe_test_acc"]
    largest = int(results["removed"].max())
    gap = probe[("random", largest)] - probe[("memorized", largest)]
    if gap > 0:
        return []
    return [f"at {largest} removed, probe accuracy after random removal minus after "
            f"memorized removal is {gap:+.4f}: removing the memorized images did not cost more"]


def main() -> None:
    seed_main(__doc__, run, table, findings,
              "removal, seeds {seeds}: public-test accuracy, mean over seeds (se)", "{:.4f}")


if __name__ == "__main__":
    main()
