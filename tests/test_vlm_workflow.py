"""The vision-language test's DAG on the tiny captioned config (tests/vlm_tiny.yaml): the
records, their split, CLIP models of A and B, every record's embeddings, the test and
results/vlm_summary.csv with its controls and the one-model test's rows (the TF-IDF
reference), the recall CCDFs, examples and the tests' agreement the report draws (its VLM
section built from them); a second variant (vlm.variants) trained and tested beside the
default; a rerun does nothing; a tested epoch added (vlm.train.checkpoints) retrains the
models to save it and tests it, and plans nothing else."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import copy_workflow, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

TARGET = "results/vlm_summary.csv"


VARIANT = "vlm:\n  variants: [{name: wide, model: {width: 8}, train: {lr: 0.002}}]\n"


def test_the_vlm_test_runs_from_records_to_its_summary(tmp_path):
    work = copy_workflow(tmp_path / "w")
    (work / "variant.yaml").write_text(VARIANT)
    args = ("--configfile", "tiny.yaml", "vlm_tiny.yaml", "variant.yaml", "--", TARGET)
    jobs = planned_jobs(work, *args)
    assert jobs == {"vlm_data": 1, "vlm_split": 1, "vlm_train": 4, "vlm_embed": 8,
                    "vlm_reference": 1, "vlm_test": 4, "vlm_summary": 1}
    snakemake(work, "-c2", *args)
    everything = pd.read_csv(work / TARGET)
    wide = everything[everything["variant"] == "wide"]
    everything = everything[everything["variant"] == "default"]
    assert len(wide) == len(everything) and not wide["precision_gap"].equals(
        everything["precision_gap"])  # trained otherwise, tested alike
    one = everything[everything["test"] == "vlm_onemodel"]
    assert set(one["reference"]) == {"tfidf"} and len(one) == len(everything) / 2
    table = everything[everything["test"] == "vlm"]
    grid = 2 * 2 * 3  # searches x k x modes
    assert table["control"].value_counts().to_dict() == {"none": grid, "heldout": grid,
                                                         "untrained": grid}
    assert set(table["k"]) == {1, 10}
    assert set(table["search"]) == {"t2i", "t2t"}
    assert set(table["mode"]) == {"top1", "top10", "all"}
    for name in ("precision_gap", "recall_gap"):
        assert table[name].between(-1, 1).all()
        assert (table[f"{name}_ci_low"] <= table[f"{name}_ci_high"]).all()
    store = work / "results/vlm/synthetic/data"
    records = pd.read_parquet(store / "records.parquet")
    assert len(records) == 300 and (store / "rejects.parquet").exists()
    split = pd.read_parquet(work / "results/vlm/synthetic/split.parquet")
    assert split["set"].value_counts().to_dict() == {"public": 180, "A": 40, "B": 40,
                                                     "heldout": 40}
    assert planned_jobs(work, *args) == {}
    (work / "more.yaml").write_text("vlm: {train: {checkpoints: [1]}}\n")
    more = planned_jobs(work, "--configfile", "tiny.yaml", "vlm_tiny.yaml", "variant.yaml",
                        "more.yaml", "--", TARGET)  # an epoch to test: retrains and tests it
    assert more == {"vlm_train": 4, "vlm_embed": 12, "vlm_test": 6, "vlm_summary": 1}
    report_section_from(work, split, tmp_path / "figures")


def report_section_from(work, split, figures):
    """The test's CCDFs and examples as the report reads them, and the section drawn."""
    from dejavu.report.vlm_figures import vlm_sections
    test = json.loads((work / "results/vlm/synthetic/test/default/s0/epoch2.json").read_text())
    for curve in test["ccdf"]:
        for role in ("target", "reference"):
            assert np.all(np.diff(curve[role]) <= 0) and 0 <= curve[role][0] <= 1
    assert len(test["ccdf"]) == 2 * 2 * 3 and test["examples"]["k"] == 10
    assert [a["search"] for a in test["agreement"]] == ["t2i", "t2t"]
    assert all(np.sum(a["counts"]) == 80 for a in test["agreement"])  # A's and B's records
    public = set(split.loc[split["set"] == "public", "row"])
    shown = test["examples"]["records"]
    assert len(shown) == 5 and all(split["set"][e["row"]] == "A" for e in shown)
    for example in shown:
        for role in ("target", "reference"):
            assert set(example[role]["neighbours"]) <= public
            assert 0 <= example[role]["precision"] <= 1
    figures.mkdir()
    results = work / "results"
    (title, body), = vlm_sections({"vlm": str(results / "vlm_summary.csv"),
                                   "vlm_test": str(results / "vlm/synthetic/test/default/s0/"
                                                   "epoch2.json"),
                                   "vlm_store": str(results / "vlm/synthetic/data")}, figures)
    assert "Models measured: clip; one-model reference: tfidf." in body
    assert body.count("<img") == 9 and (figures / "vlm_examples.png").stat().st_size > 0
    assert (figures / "vlm_recall_gap_along.png").stat().st_size > 0  # the two variants
    assert (figures / "vlm_agreement.png").stat().st_size > 0
