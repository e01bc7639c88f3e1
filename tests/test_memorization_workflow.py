"""The SSLMem paper's experiments on the finished tiny run, added by a few lines of YAML (their
parts: tests/test_removal.py, tests/test_unitmem.py): model A retrained without its most
memorized images and without as many random ones, probed, and the cost drawn; UnitMem of
both models at every layer asked for, drawn with the images behind the most selective
units."""

import json
import shutil

import pandas as pd
import pytest
import torch

from conftest import edit_config, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

RUN = "vicreg/convnet/default/n8/s0"


LAYERS = ["block1", "block2", "block3", "backbone", "hidden1", "projector"]


@pytest.fixture(scope="module")
def extended(tiny_run, tmp_path_factory):
    """The tiny run with removal and UnitMem turned on, and what the dry run planned."""
    work = tmp_path_factory.mktemp("memorization") / "w"
    shutil.copytree(tiny_run[0], work)
    # a second dataset, made as a user makes one: the dataset stage of another config
    (work / "other.yaml").write_text("results: other\ndataset: {seed: 7}\n")
    snakemake(work, "-c1", "--configfile", "tiny.yaml", "other.yaml", "--",
              "other/synthetic/dataset/index.parquet")
    edit_config(work / "tiny.yaml", removal={
                    "enabled": True, "counts": [4], "kinds": ["memorized"],
                    "downstream": [{"name": "other",
                                    "index": "other/synthetic/dataset/index.parquet"}]},
                unitmem={"enabled": True, "layers": LAYERS, "views": 2})
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    snakemake(work, "-c2", "--configfile", "tiny.yaml")
    return work, jobs


def test_removal_retrains_a_without_its_most_memorized_images_and_reports_the_cost(extended):
    from dejavu.data import removal
    work, jobs = extended
    # the removal run: listed, trained from A's start, embedded (public set) and probed
    # (random removal is the same run with another list: tests/test_removal.py); UnitMem's
    # one job; nothing of the finished run again
    # and both models of the experiment probed on the second dataset
    assert jobs == {"removal_list": 1, "init": 1, "train": 1, "snapshot": 1, "embed": 2,
                    "embed_finalize": 1, "probe": 1, "downstream_probe": 2, "removal": 1,
                    "unitmem": 1, "report": 1, "all": 1}
    results = work / "results" / "synthetic"
    table = pd.read_csv(results / "removal" / "removal.csv")
    assert list(zip(table["dataset"], table["kind"], table["removed"])) == [
        ("synthetic", "none", 0), ("synthetic", "memorized", 4),
        ("other", "none", 0), ("other", "memorized", 4)]
    assert table["probe_test_acc"].between(0, 1).all() and table["knn_test_acc"].notna().all()
    other = json.loads((results / "downstream" / "other" / RUN / "A-memorized4" /
                        "epoch2.json").read_text())
    assert (other["n_train"], other["n_test"]) == (80, 80)  # 4 classes x 40, half tested
    sslmem = pd.read_parquet(results / "sslmem" / RUN / "epoch2.parquet")
    mine = sslmem[(sslmem["set"] == "A") & (sslmem["target"] == "A")]
    top = mine.sort_values(["m", "id"], ascending=[False, True])["id"].head(4)
    gone = pd.read_parquet(results / "removal" / RUN / "memorized4.parquet")["id"]
    assert gone.tolist() == top.tolist()
    for subset in ("A-memorized4",):
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
                          if "-" in p.parent.name]).shape[0] == 1
    assert planned_jobs(work, "--configfile", "tiny.yaml") == {}


def test_unitmem_of_both_models_at_every_layer_is_reported_with_its_top_images(extended):
    work, _ = extended
    table = pd.read_parquet(work / "results/synthetic/unitmem" / RUN / "epoch2.parquet")
    widths = {"block1": 8, "block2": 16, "block3": 32, "backbone": 64, "hidden1": 64,
              "projector": 64}  # tiny.yaml: width 8, projector [64, 64]
    for model in ("target", "reference"):
        mine = table[table["model"] == model]
        assert mine.groupby("layer", sort=False).size().to_dict() == widths
    assert table["unitmem"].between(0, 1).all()
    split = pd.read_parquet(work / "results/synthetic/split/n8/split.parquet")
    assert set(table["top_id"]) <= set(split.loc[split["set"] == "A", "id"])
    figures = work / "results" / "figures"
    summary = pd.read_csv(figures / "unitmem.csv")
    assert len(summary) == 2 * len(LAYERS) and set(summary["layer"]) == set(LAYERS)
    for name in ("unitmem.png", "unitmem_top.png"):
        assert (figures / name).stat().st_size > 0
    assert "UnitMem: units that single training images dominate" in \
        (work / "results" / "report.html").read_text()

