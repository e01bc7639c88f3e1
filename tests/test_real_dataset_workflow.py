"""The workflow on a tiny ImageNet-shaped tree: the paper-scale config's dry run, a whole run
of the tiny config through ingest, and strict mode (bad dataset settings: test_config.py)."""


import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import copy_workflow, planned_jobs, snakemake
from dejavu.data.testing import VAL_BAD, add_bad_inputs, write_imagenet_tree, write_imagenet_val

pytestmark = pytest.mark.workflow


def on_tree(work, tree, *configs, **dataset):
    """Command-line arguments layering `configs` and the tree's paths (plus `dataset`
    changes) over config.yaml."""
    override = {"dataset": {"root": str(tree["train"]),
                            "annotations": str(tree["annotations"]),
                            "heldout_root": str(tree["val"]),
                            "heldout_annotations": str(tree["val_annotations"]), **dataset}}
    (work / "tree.yaml").write_text(yaml.safe_dump(override))
    return ["--configfile", *configs, "tree.yaml"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    tree = write_imagenet_tree(root, classes=4, per_class=16)
    add_bad_inputs(tree)
    return {**tree, **write_imagenet_val(root, classes=4, per_class=4)}


def test_paper_scale_config_dry_run(tree, tmp_path):
    work = copy_workflow(tmp_path / "w")
    jobs = planned_jobs(work, *on_tree(work, tree, "config/imagenet.yaml"))
    assert jobs["ingest_scan"] == 1 and jobs["ingest"] == 16 and jobs["ingest_finalize"] == 1
    assert jobs["train"] == 2 and "synth" not in jobs  # A and B; no held-out models
    # (epoch 0, 1000) x (A, B) x (public, crops) x 16 shard jobs; k-NN per embedding; ten
    # training states of 100 epochs, the checkpoint taken from the last
    assert jobs["embed"] == 2 * 2 * 2 * 16 and jobs["knn"] == 2 * 2 * 2
    assert jobs["snapshot"] == 2 and jobs["probe"] == 2 * 2
    out = snakemake(work, "-n", "-p", *on_tree(work, tree, "config/imagenet.yaml")).stdout
    assert "resnet101/default/n300/s0/A/epoch1000.pt" in out and "k100" in out


# Each paper figure's overlay (config/paper/): the models it trains -- (method, backbone,
# variant, size) pairs, each an A and a B -- and its jobs in all, as docs/cluster.md lists
# them ("Every figure of the paper")
PAPER_FIGURES = {
    "methods": 6 * 2,              # six methods, each its own recipe
    "epochs": 2 * 2,               # VICReg and supervised; epochs are snapshots of one run
    "sizes": 5 * 2,                # 100 to 500 images per class
    "partition": 1 * 2,
    "vicreg_invariance": 6 * 2,    # six coefficients, 25 the default run's
    "simclr_temperature": 10 * 2,  # ten temperatures, 0.15 the recipe's own
    "model_size": 2 * 2 * 2,       # VICReg, SimCLR x ResNet-101, ResNet-50
    "rcdm": 1 * 2,
    "mae": 1 * 2,                  # the SSLMem paper's: MAE on ViT-Base
    "removal": 1 * 2 + 6,          # VICReg's pair and A retrained six ways
}


def paper_costs() -> dict[str, int]:
    """Jobs per figure as docs/cluster.md's table of the paper's figures gives them."""
    import re

    from conftest import REPO
    text = (REPO / "docs" / "cluster.md").read_text()
    return {name: int(jobs.replace(",", "")) for name, jobs in
            re.findall(r"^\| `config/paper/(\w+)\.yaml` \| ([\d,]+) \|", text, re.M)}


@pytest.fixture(scope="module")
def paper_plans(tree, tmp_path_factory) -> dict[str, dict[str, int]]:
    """Each figure's dry run, two at a time (a dry run is one process parsing the DAG)."""
    from concurrent.futures import ThreadPoolExecutor

    def plan(figure):
        work = copy_workflow(tmp_path_factory.mktemp(figure) / "w")
        return planned_jobs(work, *on_tree(work, tree, "config/imagenet.yaml",
                                           "config/paper/recipes.yaml",
                                           f"config/paper/{figure}.yaml"))

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(sorted(PAPER_FIGURES), pool.map(plan, sorted(PAPER_FIGURES))))


@pytest.mark.parametrize("figure", sorted(PAPER_FIGURES))
def test_every_paper_figure_is_planned_with_the_jobs_its_cost_table_says(paper_plans,
                                                                           figure):
    jobs = paper_plans[figure]
    assert jobs["train"] == PAPER_FIGURES[figure], jobs
    assert jobs["summary"] == 1 and jobs["report"] == 1
    assert sum(jobs.values()) - jobs.get("all", 0) == paper_costs()[figure]


def test_strict_mode_stops_at_the_first_bad_input(tree, tmp_path):
    work = copy_workflow(tmp_path / "w")
    proc = snakemake(work, "-c1", *on_tree(work, tree, "tiny.yaml", "tiny_imagenet.yaml",
                                           strict=True), check=False)
    assert proc.returncode != 0
    log = (work / "results/imagenet/logs/ingest_scan/all.log").read_text()
    assert "strict mode" in log and str(tree["annotations"]) in log
    assert not (work / "results/imagenet/dataset/manifest.parquet").exists()


@pytest.fixture(scope="module")
def imagenet_run(tree, tmp_path_factory):
    """The tiny run, its naive Bayes correlation classifier reading a tags file: each image
    tagged with its class's colour two times in three, and a tag no class owns."""
    work = copy_workflow(tmp_path_factory.mktemp("run") / "w")
    rng = np.random.default_rng(0)
    rows = []
    for path in sorted(tree["train"].rglob("*.JPEG")):
        wnid = path.parent.name
        rows.append((path.stem, "outdoor"))
        if rng.random() < 2 / 3:
            rows.append((path.stem, f"colour-of-{wnid}"))
    pd.DataFrame(rows, columns=["id", "tag"]).to_csv(work / "tags.csv", index=False)
    # one shard job per store, no untrained control, no ResNet correlation classifier (4
    # training jobs on crops), no linear probe or SSLMem, and RCDM decoders trained a fifth
    # as long (only their plumbing on real images is checked here): the synthetic runs
    # cover those
    (work / "tags.yaml").write_text(
        "onemodel: {tags: tags.csv, classifiers: [naive_bayes]}\n"
        "embed: {jobs: 1}\ncontrols: {untrained: false}\n"
        "probe: {enabled: false}\nsslmem: {enabled: false}\n"
        "rcdm: {steps: 40, warmup_steps: 4}\n")
    snakemake(work, "-c2", *on_tree(work, tree, "tiny.yaml", "tiny_imagenet.yaml"),
              "tags.yaml")
    return work


def test_tiny_imagenet_runs_end_to_end_and_counts_bad_inputs(imagenet_run, tree):
    work = imagenet_run
    summary = pd.read_csv(work / "results/summary.csv")
    assert set(summary["dataset"]) == {"imagenet"}
    assert set(summary["crop_mode"]) == {"periphery", "corner"}
    rejects = pd.read_parquet(work / "results/imagenet/dataset/rejects.parquet")
    skipped = 5 + len(VAL_BAD)  # the train tree's unreadable images, the unlabelled val ones
    assert (rejects["action"] == "image skipped").sum() == skipped
    index = pd.read_parquet(work / "results/imagenet/dataset/index.parquet")
    files = list(tree["train"].rglob("*.JPEG")) + list(tree["val"].rglob("*.JPEG"))
    assert len(index) == len(files) - skipped
    page = (work / "results/report.html").read_text()
    assert "Dataset input problems" in page and f"{skipped} files skipped" in page
    # the validation images are the held-out control: trained on by neither model, all of
    # them attacked, and nothing else held out
    split = pd.read_parquet(work / "results/imagenet/split/n4/split.parquet")
    held = split[split["set"] == "heldout"]
    assert set(held["id"]) == set(index.loc[index["pool"] == "heldout", "id"])
    assert len(held) == 16 and held["attacked"].all()
    assert not set(held["id"]) & set(split.loc[split["set"] != "heldout", "id"])
    controls = summary[summary["control"] == "heldout"]
    assert len(controls) and controls["score"].notna().all()
    assert "held-out control was skipped" not in page
    # RCDM on real (non-square, fit-stored) images: decoders trained, samples drawn
    assert "Reconstructions from background crops" in page
    crops = pd.read_parquet(work / "results/imagenet/crops/n4/periphery.parquet")
    assert crops["valid"].any()
    # the one-model test with naive Bayes over the tags file: the colour tag gives the class
    # away on the crops it carries, so the classifier is right far above chance (1/4)
    tagged = pd.read_parquet(work / "results/imagenet/correlation/n4/periphery/"
                             "naive_bayes-B.parquet")
    assert tagged.loc[~tagged["trained"], "correct"].mean() >= 0.5
    assert "One-model test" in page


def test_train_set_sizes_are_nested_with_a_fixed_public_set(imagenet_run, tree):
    work = imagenet_run
    (work / "sizes.yaml").write_text("split: {npc: [2, 4]}\n")
    snakemake(work, "-c2", *on_tree(work, tree, "tiny.yaml", "tiny_imagenet.yaml"),
              "tags.yaml", "sizes.yaml", "--", "results/imagenet/split/n2/split.parquet")
    small = pd.read_parquet(work / "results/imagenet/split/n2/split.parquet")
    large = pd.read_parquet(work / "results/imagenet/split/n4/split.parquet")
    for name in ("A", "B"):
        assert set(small.loc[small["set"] == name, "id"]) < \
            set(large.loc[large["set"] == name, "id"])
    for name in ("public", "public_test"):
        assert set(small.loc[small["set"] == name, "id"]) == \
            set(large.loc[large["set"] == name, "id"])
    assert not set(large["id"]) & {i for i in large["id"] if i.endswith(("9001", "9002"))}

