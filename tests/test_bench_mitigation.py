"""bench/mitigation.py's tables on summaries written by hand: a variant's mean change over
seeds and the seeds whose interval lies wholly below or above zero, each method's default
row, depth in model order, and the rows a seed lacks named."""

import pandas as pd
import pytest

from conftest import bench_script

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def bench():
    return bench_script("mitigation")


def row(seed, method, variant, score, change=None, low=None, high=None, embedding="projector",
        control="none", epoch=400, probe=0.9, frontier=False):
    out = {"data_seed": seed, "method": method, "variant": variant, "embedding": embedding,
           "control": control, "epoch": epoch, "score": score, "p": 0.2,
           "probe_test_acc": probe, "knn_test_acc": probe - 0.05, "frontier": frontier}
    for name in ("score", "probe_test_acc", "knn_test_acc"):
        out[f"{name}_change"] = change
        out[f"{name}_change_ci_low"] = low
        out[f"{name}_change_ci_high"] = high
    return out


def test_a_variant_counts_the_seeds_whose_interval_excludes_zero(bench):
    rows = pd.DataFrame([
        row(0, "vicreg", "default", 0.25, frontier=True),
        row(1, "vicreg", "default", 0.21),
        row(0, "vicreg", "wd", 0.15, -0.10, -0.16, -0.04),   # below zero
        row(1, "vicreg", "wd", 0.16, -0.05, -0.12, 0.02),    # reaches zero
        row(0, "vicreg", "wide", 0.30, 0.05, 0.01, 0.09),    # above zero
        row(1, "vicreg", "wide", 0.20, -0.01, -0.07, 0.05),
    ])
    table = bench.variant_table(rows).set_index("variant")
    assert table.loc["wd", "score_change"] == pytest.approx(-0.075)
    assert (table.loc["wd", "score_below0"], table.loc["wd", "score_above0"]) == (1, 0)
    assert (table.loc["wide", "score_below0"], table.loc["wide", "score_above0"]) == (0, 1)
    assert table.loc["wd", "seeds"] == 2 and "default" not in table.index
    methods = bench.method_table(rows).set_index("method")
    assert methods.loc["vicreg", "score"] == pytest.approx(0.23)   # the default's only
    assert methods.loc["vicreg", "on_frontier"] == 1 and methods.loc["vicreg", "seeds"] == 2


def test_only_the_last_epoch_of_the_real_test_is_read(bench):
    summary = pd.DataFrame([
        row(0, "vicreg", "default", 0.1, epoch=100), row(0, "vicreg", "default", 0.25),
        row(0, "vicreg", "default", 0.01, control="heldout"),
        row(0, "byol", "default", 0.12, epoch=100),   # its last epoch is 100
    ])
    kept = bench.last_real(summary)
    assert sorted(zip(kept["method"], kept["epoch"], kept["score"])) == [
        ("byol", 100, 0.12), ("vicreg", 400, 0.25)]


def test_depth_runs_from_the_input_to_the_projector(bench):
    rows = pd.DataFrame([row(s, "vicreg", "default", score, embedding=name)
                         for s in (0, 1)
                         for name, score in [("projector", 0.2 + s / 10), ("block2", 0.0),
                                             ("hidden1", 0.1), ("backbone", 0.05),
                                             ("block1", -0.01)]])
    table = bench.depth_table(rows)
    assert list(table.columns) == ["method", "variant", "block1", "block2", "backbone",
                                   "hidden1", "projector"]
    assert table.loc[0, "projector"] == pytest.approx(0.25)


def test_rows_a_seed_lacks_are_named(bench):
    config = {"train": {"methods": ["vicreg", "byol"]},
              "variants": [{"name": "wd", "methods": ["vicreg"]}]}
    rows = pd.DataFrame([row(0, "vicreg", "default", 0.2), row(0, "byol", "default", 0.1),
                         row(0, "vicreg", "wd", 0.1, -0.1, -0.2, 0.0),
                         row(1, "vicreg", "default", 0.2), row(1, "byol", "default", 0.1)])
    assert bench.missing(rows, config) == ["seed 1: wd vicreg"]


def seed_rows(seed, broken=None):
    """One seed's last-epoch rows where every finding holds; `broken` overrides values:
    (variant, embedding, column) -> value."""
    changes = {"crops_large": -0.1, "invariance_low": -0.1, "narrow": -0.01}
    rows = []
    for method, variant in [("vicreg", "default"), ("vicreg", "crops_large"),
                            ("vicreg", "invariance_low"), ("vicreg", "narrow"),
                            ("byol", "default")]:
        change = changes.get(variant)
        for depth, name in enumerate(["block1", "backbone", "hidden1", "hidden2", "projector"]):
            out = row(seed, method, variant, 0.25 if name == "projector" else 0.02,
                      change, embedding=name)
            out["layermem_train"], out["layermem_heldout"] = 0.1 * depth + 0.05, 0.05
            if variant == "narrow":
                out["probe_test_acc_change"] = -0.1
            rows.append(out)
    frame = pd.DataFrame(rows)
    for (variant, embedding, column), value in (broken or {}).items():
        frame.loc[(frame["variant"] == variant) & (frame["embedding"] == embedding),
                  column] = value
    return frame


def test_findings_name_the_seed_and_the_claim_that_breaks(bench):
    assert bench.findings(pd.concat([seed_rows(0), seed_rows(1)])) == []
    broken = pd.concat([seed_rows(0), seed_rows(1, {
        ("crops_large", "projector", "score_change"): 0.02,
        ("default", "block1", "score"): 0.3,            # vicreg's (and byol's) stage
        ("narrow", "hidden2", "layermem_train"): 0.0})])
    assert bench.findings(broken) == [
        "seed 1: crops_large changes score by +0.020, not below zero",
        "seed 1: VICReg's projector +0.250 not above its backbone's stages (up to +0.300)",
        "seed 1: vicreg [narrow] LayerMem gap along backbone/hidden1/hidden2/projector is "
        "not rising: +0.1000 +0.2000 -0.0500 +0.4000"]
