"""The SSLMem paper's removal experiment on the synthetic benchmark: bench/removal.yaml (the
demo's VICReg run; A retrained without its 50, 100, 200 most memorized images by SSLMem, and
without as many random ones) at several data/model seeds, the linear probe's and the k-NN's
accuracy per dataset, kind and count (mean over seeds and its standard error): on the
public test split, and on a second dataset, `downstream` (the synthetic benchmark drawn with
another seed: other class colours and scenes, 7,000 images, half of each class tested; its
store made by the workflow's own dataset stage, as a user makes one).

    python bench/removal.py                          # seeds 0 1 2: about 90 minutes on 2 cores
    python bench/removal.py --seeds 0 --keep runs/removal --check

Each seed is a scratch copy of the workflow run with `dataset.seed`, `split.seed` and
`train.seeds` set to it (as bench/sweeps.py does); a `--keep` folder is reused.

The finding, the paper's, written before the measurement (docs/removal.md gives what was
measured): removing the most memorized images costs more downstream accuracy than removing
as many random ones -- at the largest count, the seed-mean linear-probe accuracy after
memorized removal is below the accuracy after random removal (by more than zero), on the
public test split; and (written before its first run, when the second dataset was added) on
the second dataset too. With `--check` it exits 1 when that does not hold, whatever the
measurement shows otherwise.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import yaml
from scratch import REPO, copy_workflow, seed_main, seeded, snakemake

sys.path.insert(0, str(REPO))  # the checkout's package, installed or not

from dejavu.data import removal  # noqa: E402

OVERLAY = REPO / "bench" / "removal.yaml"
DOWNSTREAM_SEED = 1000  # the second dataset of seed s is drawn with dataset seed 1000 + s


def run(seed: int, work: Path) -> pd.DataFrame:
    copy_workflow(work)
    shutil.copy(OVERLAY, work / "removal.yaml")  # bench/ is not part of the copy
    seed_file = seeded(work, seed)
    (work / "downstream.yaml").write_text(yaml.safe_dump(
        {"results": "downstream", "dataset": {"seed": DOWNSTREAM_SEED + seed}}))
    snakemake(work, "-c2", "--configfile", seed_file, "downstream.yaml", "--",
              "downstream/synthetic/dataset/index.parquet")
    snakemake(work, "-c2", "--rerun-incomplete", "--configfile", "removal.yaml", seed_file)
    return pd.read_csv(work / "results" / "synthetic" / "removal" / "removal.csv")


def table(results: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, kind and count: both accuracies' seed means and standard errors."""
    probe = removal.curves(results, "probe_test_acc")
    knn = removal.curves(results, "knn_test_acc")
    keys = ["method", "backbone", "dataset", "kind", "removed"]
    return probe.merge(knn, on=[*keys, "seeds"], suffixes=("_probe", "_knn"))


def findings(results: pd.DataFrame) -> list[str]:
    """What does not hold of the finding in the docstring, one sentence each (per dataset)."""
    broken = []
    largest = int(results["removed"].max())
    curves = removal.curves(results).set_index(["dataset", "kind", "removed"])
    for dataset in results["dataset"].unique():
        probe = curves.loc[dataset, "probe_test_acc"]
        gap = probe[("random", largest)] - probe[("memorized", largest)]
        if gap <= 0:
            broken.append(f"{dataset}: at {largest} removed, probe accuracy after random removal "
                          f"minus after memorized removal is {gap:+.4f}: removing the "
                          f"memorized images did not cost more")
    return broken


def main() -> None:
    seed_main(__doc__, run, table, findings,
              "removal, seeds {seeds}: accuracy per dataset, mean over seeds (se)", "{:.4f}")


if __name__ == "__main__":
    main()
