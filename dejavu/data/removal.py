"""The removal experiment of the SSLMem paper (Wang et al., ICLR 2024): does removing the
training images an encoder memorizes most hurt its downstream accuracy more than removing as
many images at random? (definitions §12)

A removal run retrains a target model on its set A minus m images: the m with the highest
SSLMem score m(x) under the finished run (target A, reference B), or m drawn at random.
Removal runs are models like A and B, named by their training set as the `subset` wildcard:
`A-memorized<m>`, `A-random<m>`. They start from A's initial weights and train with A's
seed, so they differ from A in their data alone; their linear probe is fit on the whole of A
and tested on the public test split, like A's own.

Torch-free: the Snakefile reads the names, the removal job the lists, the report the table.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

KINDS = ("memorized", "random")
BASE = "A"  # the set removal runs leave images out of
_SUBSET = re.compile(rf"{BASE}-({'|'.join(KINDS)})([1-9][0-9]*)")
SUBSET_PATTERN = rf"A|B|{BASE}-(?:{'|'.join(KINDS)})[1-9][0-9]*"  # the subset wildcard
COLUMNS = ["method", "backbone", "variant", "train_size", "seed", "epoch", "dataset", "kind",
           "removed", "probe_test_acc", "knn_test_acc"]


def subset(kind: str, m: int) -> str:
    """The subset name of a removal run."""
    if kind not in KINDS:
        raise ValueError(f"removal kind {kind!r} is not one of {KINDS}")
    return f"{BASE}-{kind}{m}"


def parse(name: str) -> tuple[str, str | None, int]:
    """(training set, kind, images removed) of a subset name: ("A", None, 0) for A itself."""
    match = _SUBSET.fullmatch(name)
    if match is None:
        return name, None, 0
    return BASE, match.group(1), int(match.group(2))


def base(name: str) -> str:
    """The split set a subset trains on (before any removal)."""
    return parse(name)[0]


def removal_seed(seed: int) -> int:
    """The random stream of random removal for model seed `seed`."""
    import numpy as np
    return int(np.random.SeedSequence([seed, 0x52454D]).generate_state(1)[0])


def removed_ids(sslmem: pd.DataFrame, kind: str, m: int, seed: int) -> np.ndarray:
    """The ids of the m images of set A to leave out: those of highest m(x) under target A
    (ties: the smaller id first), or m at random; nested in m either way (the 50 removed are
    among the 100 removed)."""
    import numpy as np
    rows = sslmem[(sslmem["set"] == BASE) & (sslmem["target"] == BASE)]
    if not 0 < m < len(rows):
        raise ValueError(f"removal.counts: {m} of the {len(rows)} scored images of set A "
                         f"cannot be removed (at least 1, fewer than all)")
    if kind == "memorized":
        order = rows.sort_values(["m", "id"], ascending=[False, True], kind="stable")["id"]
        return order.to_numpy()[:m]
    if kind == "random":
        ids = np.sort(rows["id"].to_numpy())
        return np.random.default_rng(removal_seed(seed)).permutation(ids)[:m]
    raise ValueError(f"removal kind {kind!r} is not one of {KINDS}")


def run(sslmem_path: str, out_path: str, *, kind: str, m: int, seed: int) -> None:
    """The removal_list stage: the ids a removal run leaves out, one column `id`."""
    import pandas as pd
    ids = removed_ids(pd.read_parquet(sslmem_path), kind, m, seed)
    pd.DataFrame({"id": ids}).to_parquet(out_path, index=False)


def table(probe_paths: list[str], downstream_paths: list[str] = (),
          dataset: str = "") -> pd.DataFrame:
    """One row per probe result of A or of a removal run (its `subset` says which) on a
    dataset: the run's own public test split (`dataset`) or a second one (its name)."""
    import pandas as pd
    rows = []
    for path in [*probe_paths, *downstream_paths]:
        with open(path) as f:
            probe = json.load(f)
        _, kind, m = parse(probe["subset"])
        rows.append({**{k: probe[k] for k in COLUMNS[:6]},
                     "dataset": probe.get("dataset", dataset), "kind": kind or "none",
                     "removed": m, "probe_test_acc": probe["test_acc"],
                     "knn_test_acc": probe.get("knn_test_acc")})
    return pd.DataFrame(rows, columns=COLUMNS)


def curves(results: pd.DataFrame, metric: str = "probe_test_acc") -> pd.DataFrame:
    """Per method, backbone, dataset, kind and number removed: the metric's mean over
    seeds, its standard error and the seeds counted. A (nothing removed) is the start of
    each kind's curve."""
    import numpy as np
    import pandas as pd
    start = results[results["kind"] == "none"]
    kinds = [kind for kind in KINDS if (results["kind"] == kind).any()]
    both = pd.concat([results[results["kind"] != "none"],
                      *(start.assign(kind=kind) for kind in kinds)], ignore_index=True)
    keys = ["method", "backbone", *(["dataset"] if "dataset" in both else []), "kind",
            "removed"]
    grouped = both.groupby(keys)[metric]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    out["se"] = out["std"].fillna(0) / np.sqrt(out["count"])
    return out.drop(columns="std").rename(columns={"mean": metric, "count": "seeds"})
