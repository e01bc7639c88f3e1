"""The one-model VLM test beside the two-model test on the synthetic captioned benchmark
(bench/vlm.yaml, with `vlm.onemodel` on: each VLM against the built-in TF-IDF reference
text model) at several seeds: its gaps beside the two-model test's on the real test's and
the held-out records, and which records each finds memorized.

    python bench/vlm_onemodel.py --keep runs/vlm --check      # reuses bench/vlm.py's runs

Run in bench/vlm.py's `--keep` folder it reuses the trained models (only the reference
model and the test run again). The finding, the one-model paper's, written before the
measurement (docs/vlm.md gives what was measured): the one-model test overestimates the
two-model test -- at k = 10 and the ten most frequent objects, text-to-image, its recall
gap on the real test's records is above the two-model test's at every seed. With `--check`
it exits 1 when that does not hold -- and measured at seeds 0, 1, 2 it does not: the
one-model gap is above at seed 0 and below at seeds 1 and 2, within the intervals
(docs/vlm.md, "The one-model test", gives the table and the reason).
"""

from __future__ import annotations

import json

import pandas as pd
from scratch import seed_main
from vlm import K, MODE, run

COLUMNS = ["seed", "control", "test", "precision_gap", "recall_gap", "recall_gap_ci_low",
           "recall_gap_ci_high"]


def run_both(seed: int, work) -> pd.DataFrame:
    rows = run(seed, work, {"onemodel": {"enabled": True}})
    agreed = json.loads(next((work / "results/vlm").glob(
        f"*/test/default/s{seed}/epoch*[1-9]*.json")).read_text())["agreement"]
    counts = {a["search"]: a["counts"] for a in agreed}
    print(f"seed {seed}, t2i: [[both, two-model only], [one-model only, neither]] = "
          f"{counts.get('t2i')}")
    return rows


def table(rows: pd.DataFrame) -> pd.DataFrame:
    at = rows[(rows["k"] == K) & (rows["mode"] == MODE) & (rows["search"] == "t2i")
              & rows["control"].isin(["none", "heldout"])]
    return at[COLUMNS].sort_values(["control", "seed", "test"])


def findings(rows: pd.DataFrame) -> list[str]:
    real = table(rows)
    real = real[real["control"] == "none"].pivot(index="seed", columns="test",
                                                 values="recall_gap")
    return [f"seed {seed}: one-model recall gap {r['vlm_onemodel']:+.3f} not above the "
            f"two-model test's {r['vlm']:+.3f}"
            for seed, r in real.iterrows() if r["vlm_onemodel"] <= r["vlm"]]


def main() -> None:
    seed_main(__doc__, run_both, table, findings,
              f"one-model vs two-model VLM test, seeds {{seeds}}, t2i, k = {K}, {MODE}")


if __name__ == "__main__":
    main()
