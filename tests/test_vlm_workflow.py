"""The vision-language test's DAG on the tiny captioned config (tests/vlm_tiny.yaml): the
records, their split, CLIP models of A and B, every record's embeddings, the test and
results/vlm_summary.csv with its controls; a rerun does nothing."""

import pandas as pd
import pytest

from conftest import copy_workflow, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

TARGET = "results/vlm_summary.csv"


def test_the_vlm_test_runs_from_records_to_its_summary(tmp_path):
    work = copy_workflow(tmp_path / "w")
    args = ("--configfile", "tiny.yaml", "vlm_tiny.yaml", "--", TARGET)
    jobs = planned_jobs(work, *args)
    assert jobs == {"vlm_data": 1, "vlm_split": 1, "vlm_train": 2, "vlm_embed": 4,
                    "vlm_test": 2, "vlm_summary": 1}
    snakemake(work, "-c2", *args)
    table = pd.read_csv(work / TARGET)
    grid = 2 * 2 * 3  # searches x k x modes
    assert table["control"].value_counts().to_dict() == {"none": grid, "heldout": grid,
                                                         "untrained": grid}
    assert set(table["test"]) == {"vlm"} and set(table["k"]) == {1, 10}
    assert set(table["search"]) == {"t2i", "t2t"} and set(table["mode"]) == {"top1", "top10", "all"}
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
