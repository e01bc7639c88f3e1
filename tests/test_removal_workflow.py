"""The removal experiment on the finished tiny run (its parts: tests/test_removal.py): two
lines of YAML retrain model A without its most memorized images and without as many random
ones, probe them, and the report draws what removal cost."""

import json
import shutil

import pandas as pd
import pytest
import torch

from conftest import edit_config, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

RUN = "vicreg/convnet/default/n8/s0"


def test_removal_retrains_a_without_its_most_memorized_images_and_reports_the_cost(
        tiny_run, tmp_path):
    from dejavu import removal
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", removal={"enabled": True, "counts": [4]})
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    # the two removal runs: listed, trained from A's start, embedded (public set) and probed
    assert jobs == {"removal_list": 2, "init": 2, "train": 2, "snapshot": 2, "embed": 4,
                    "embed_finalize": 2, "probe": 2, "removal": 1, "report": 1, "all": 1}
    snakemake(work, "-c2", "--configfile", "tiny.yaml")
    results = work / "results" / "synthetic"
    table = pd.read_csv(results / "removal" / "removal.csv")
    assert list(zip(table["kind"], table["removed"])) == [
        ("none", 0), ("memorized", 4), ("random", 4)]
    assert table["probe_test_acc"].between(0, 1).all() and table["knn_test_acc"].notna().all()
    sslmem = pd.read_parquet(results / "sslmem" / RUN / "epoch2.parquet")
    mine = sslmem[(sslmem["set"] == "A") & (sslmem["target"] == "A")]
    top = mine.sort_values(["m", "id"], ascending=[False, True])["id"].head(4)
    gone = pd.read_parquet(results / "removal" / RUN / "memorized4.parquet")["id"]
    assert gone.tolist() == top.tolist()
    for subset in ("A-memorized4", "A-random4"):
        probe = json.loads((results / "probe" / RUN / subset / "epoch2.json").read_text())
        assert probe["subset"] == subset and probe["n_train"] == 32  # probed on all of A
        log = (results / "logs" / "train" / RUN / f"{subset}.log").read_text()
        assert "on 28 images of set A-" in log
        start = torch.load(results / "models" / RUN / subset / "epoch0.pt", weights_only=True)
        own = torch.load(results / "models" / RUN / "A" / "epoch0.pt", weights_only=True)
        assert all(torch.equal(start["state_dict"][k], v) for k, v in own["state_dict"].items())
    figures = work / "results" / "figures"
    assert (figures / "removal.png").stat().st_size > 0
    assert "Removing memorized training images" in (work / "results" / "report.html").read_text()
    assert removal.table([str(p) for p in sorted((results / "probe").rglob("epoch2.json"))
                          if "-" in p.parent.name]).shape[0] == 2
    assert planned_jobs(work, "--configfile", "tiny.yaml") == {}
