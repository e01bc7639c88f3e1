"""The paper's hyperparameter and size figures on the synthetic benchmark: each CPU twin of
config/paper/ (config/paper/cpu/<sweep>.yaml over the demo) at several data/model seeds,
the déjà vu score at p of the projector and the backbone, its held-out control and the
linear probe's test accuracy per swept value (mean over seeds, with the seeds' range), and
the findings below checked against them.

    python bench/sweeps.py vicreg_invariance                  # seeds 0 1 2: hours on 2 cores
    python bench/sweeps.py sizes --seeds 0 --keep runs/sweeps
    python bench/sweeps.py model_size --keep runs/sweeps --check

Each seed is a scratch copy of the workflow run with `dataset.seed`, `split.seed` and
`train.seeds` set to it (as bench/known_answer.py does); a `--keep` folder is reused, so
seeds can be run one at a time and read together. With `--check` it exits 1 when a finding
does not hold.

The findings were written before the measurements (docs/configuration.md, "Sweeps on the
benchmark", gives what was measured and whether the paper's finding was reproduced):
- every point's held-out control stays near zero (|score| <= CONTROL);
- vicreg_invariance: the score rises with the invariance coefficient (the largest
  coefficient's seed-mean score above the smallest's by at least RISE);
- simclr_temperature: the temperature matters (the seed-mean scores span at least RISE);
- sizes: the score stays roughly constant with the train-set size, the paper's Figure 4
  (every size within FLAT of the others);
- model_size: the wider model scores higher (the widest's seed-mean score above the
  narrowest's by at least RISE).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import yaml
from scratch import (REPO, copy_workflow, over_seeds, seed_parser, seeded, snakemake,
                     verdict)

sys.path.insert(0, str(REPO))  # the checkout's package, installed or not

from dejavu import variants  # noqa: E402
from dejavu.config import merged, validate  # noqa: E402

SWEEPS = ("vicreg_invariance", "simclr_temperature", "sizes", "model_size")
CONTROL = 0.10  # a held-out control's score within +-CONTROL of zero (about 2 SE at 250 images)
RISE = 0.05     # a trend: its ends apart by more than the seeds' typical spread
FLAT = 0.08     # roughly constant: no two sizes apart by more than this


def overlay(sweep: str) -> Path:
    return REPO / "config" / "paper" / "cpu" / f"{sweep}.yaml"


def run(sweep: str, seed: int, work: Path) -> pd.DataFrame:
    copy_workflow(work)
    seed_file = seeded(work, seed)
    snakemake(work, "-c2", "--rerun-incomplete", "--configfile",
              str(overlay(sweep).relative_to(REPO)), seed_file)
    return pd.read_csv(work / "results" / "summary.csv").assign(data_seed=seed)


def points(summary: pd.DataFrame, sweep: str) -> pd.DataFrame:
    """The rows of the sweep's figure (last epoch, real test and held-out control) with
    the swept value in `x`: a variant's value, the default run's own, or the size."""
    rows = summary[summary["control"].isin(["none", "heldout"])]
    rows = rows[rows["epoch"] == rows["epoch"].max()]
    if sweep == "sizes":
        return rows.assign(x=rows["train_size"])
    config = merged(yaml.safe_load((REPO / "config.yaml").read_text()),
                    yaml.safe_load(overlay(sweep).read_text()))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # defaults
    spec = variants.sweep_specs(config)[0]
    rows = rows[rows["method"].isin(spec["methods"])]
    value = [spec["points"].get(v, spec["base"].get(m))
             for v, m in zip(rows["variant"], rows["method"])]
    return rows.assign(x=value)


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per embedding and value: the real test's score (mean, min, max over seeds), the
    held-out control's mean and the probe's test accuracy."""
    real = rows[rows["control"] == "none"].groupby(["embedding", "x"])
    out = real["score"].agg(["mean", "min", "max", "count"]).add_prefix("score_")
    out["heldout"] = rows[rows["control"] == "heldout"].groupby(["embedding", "x"])["score"].mean()
    out["probe_test_acc"] = real["probe_test_acc"].mean()
    return out.reset_index()


def findings(sweep: str, rows: pd.DataFrame) -> list[str]:
    """What does not hold of the findings in the docstring, one sentence each."""
    broken = [f"{r.embedding} at {r.x}: held-out control {r.score:+.3f} beyond "
              f"+-{CONTROL}" for r in rows[rows["control"] == "heldout"].itertuples()
              if abs(r.score) > CONTROL]
    projector = table(rows)
    projector = projector[projector["embedding"] == "projector"].sort_values("x")
    means = projector.set_index("x")["score_mean"]
    if len(means) < 2:
        return broken + [f"{len(means)} swept value(s) of the projector scored: no trend"]
    if sweep in ("vicreg_invariance", "model_size"):
        rise = means.iloc[-1] - means.iloc[0]
        if rise < RISE:
            broken.append(f"projector score at {means.index[-1]} minus at {means.index[0]}: "
                          f"{rise:+.3f}, not a rise of at least {RISE}")
    elif sweep == "simclr_temperature":
        if means.max() - means.min() < RISE:
            broken.append(f"projector scores span {means.max() - means.min():.3f} over the "
                          f"temperatures, less than {RISE}")
    elif sweep == "sizes" and means.max() - means.min() > FLAT:
        broken.append(f"projector scores span {means.max() - means.min():.3f} over the sizes "
                      f"({means.round(3).to_dict()}), more than {FLAT}: not roughly constant")
    return broken


def main() -> None:
    parser = seed_parser(__doc__)
    parser.add_argument("sweep", choices=SWEEPS)
    args = parser.parse_args()
    summaries = over_seeds(args.keep, args.seeds,
                           lambda seed, work: run(args.sweep, seed, work), args.sweep)
    rows = pd.concat([points(s, args.sweep) for s in summaries], ignore_index=True)
    print(f"{args.sweep}, seeds {args.seeds}, epoch {rows['epoch'].max()}, p = "
          f"{rows['p'].iloc[0]}, last epoch; score mean [min, max] over seeds")
    print(table(rows).to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    verdict(findings(args.sweep, rows), args.check)

if __name__ == "__main__":
    main()
