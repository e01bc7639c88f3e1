"""bench/removal.py on tables written by hand: the finding holds when memorized removal
costs more accuracy than random removal at the largest count, on every dataset, and breaks
otherwise."""

import pandas as pd
import pytest

from conftest import bench_script

pytestmark = pytest.mark.unit


def results(memorized: float, random: float, seeds=(0, 1, 2),
            dataset: str = "synthetic") -> pd.DataFrame:
    """Probe accuracies per seed: A at 0.90, each kind at 100 removed, half that at 50."""
    rows = []
    for seed in seeds:
        for kind, removed, acc in (("none", 0, 0.90), ("memorized", 50, (0.90 + memorized) / 2),
                                   ("memorized", 100, memorized),
                                   ("random", 50, (0.90 + random) / 2),
                                   ("random", 100, random)):
            rows.append({"method": "vicreg", "backbone": "convnet", "variant": "default",
                         "train_size": 50, "seed": seed, "epoch": 400,
                         "dataset": dataset, "kind": kind,
                         "removed": removed, "probe_test_acc": acc + 0.001 * seed,
                         "knn_test_acc": acc - 0.05})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("memorized, random, broken", [
    (0.85, 0.88, []), (0.88, 0.88, ["+0.0000"]), (0.89, 0.86, ["-0.0300"])])
def test_the_finding_breaks_unless_memorized_removal_costs_more(memorized, random, broken):
    bench = bench_script("removal")
    found = bench.findings(results(memorized, random))
    assert len(found) == len(broken) and all(b in f for b, f in zip(broken, found))
    table = bench.table(results(memorized, random)).set_index(["kind", "removed"])
    assert (table["dataset"] == "synthetic").all()
    assert table.loc[("random", 100), "probe_test_acc"] == pytest.approx(random + 0.001)
    assert table.loc[("memorized", 0), "knn_test_acc"] == pytest.approx(0.85)
    assert (table["seeds"] == 3).all()


def test_the_finding_is_checked_on_the_second_dataset_too():
    bench = bench_script("removal")
    both = pd.concat([results(0.85, 0.88), results(0.89, 0.86, dataset="other")])
    found = bench.findings(both)
    assert len(found) == 1 and found[0].startswith("other: at 100 removed") and "-0.0300" in found[0]
