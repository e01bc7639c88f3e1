import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import (LEAN, REPO, SLIM, copy_workflow, edit_config, equal_where_computed,
                      planned_jobs, same_training_states, snakemake)

pytestmark = pytest.mark.workflow

SUMMARY_COLUMNS = (
    "dataset, method, backbone, epoch, train_size, seed, embedding, k, crop_mode, control, p, "
    "n_attacked, acc_target, acc_reference, score, score_ci_low, score_ci_high, "
    "acc_target_all, acc_reference_all, memorized, misrepresented, correlated, unassociated"
).split(", ")


def test_lint_is_clean():
    proc = snakemake(REPO, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_plans_every_stage(tmp_path):
    work = copy_workflow(tmp_path / "w")
    jobs = planned_jobs(work)
    assert set(jobs) == {"synth", "split", "crops", "init", "train", "snapshot", "embed",
                         "embed_finalize", "index", "knn", "probe", "score", "decoder_train",
                         "decoder_sample", "correlation", "onemodel", "sslmem", "unitmem",
                         "summary", "report", "all"}
    assert jobs["train"] == 2 and jobs["init"] == 2  # models A and B
    assert jobs["decoder_train"] == 2 and jobs["decoder_sample"] == 1  # RCDM: A, B; the pair
    assert jobs["snapshot"] == 2 and jobs["probe"] == 4  # (A, B) x (epoch 0, 400)
    # one-model test: (resnet, naive_bayes) x (trained on A, on B); per epoch, embedding and
    # classifier; SSLMem of the trained pair
    assert jobs["correlation"] == 4 and jobs["onemodel"] == 2 * 2 * 2 and jobs["sslmem"] == 1
    assert jobs["unitmem"] == 1  # the trained pair at its last epoch


@pytest.mark.parametrize("section, change, key", [
    ("train", {"epochs": "many"}, "epochs"),          # the schema's check
    ("train", {"methods": ["ijepa"]}, "train.methods: unknown method 'ijepa'"),  # dejavu.config's
])
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, section, change, key):
    """Through Snakemake itself; every other bad setting: tests/test_config.py."""
    work = copy_workflow(tmp_path / "w")
    edit_config(work / "config.yaml", **{section: change})
    proc = snakemake(work, "-c1", check=False)
    assert proc.returncode != 0
    assert key in proc.stderr + proc.stdout
    assert not (work / "results" / "synthetic").exists()  # nothing ran


def test_tiny_run_writes_summary_and_report(tiny_run):
    work, _ = tiny_run
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert list(summary.columns[:len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS
    # 2 embeddings x (trained: none + heldout, untrained)
    assert len(summary) == 6
    assert set(summary["control"]) == {"none", "heldout", "untrained"}
    shares = summary[["memorized", "misrepresented", "correlated", "unassociated"]].sum(axis=1)
    assert (shares - 1).abs().max() < 1e-9
    assert ((summary["score_ci_low"] <= summary["score"])
            & (summary["score"] <= summary["score_ci_high"])).all()
    gap = summary["acc_target"] - summary["acc_reference"]
    assert (summary["score"] - gap).abs().max() < 1e-9
    assert summary["probe_train_acc"].notna().all() and summary["probe_gap"].notna().all()
    # the one-model test beside every row (first classifier); SSLMem on the trained pair's
    assert (summary["onemodel_classifier"] == "resnet").all()
    assert summary["onemodel_score"].notna().all() and summary["acc_classifier"].notna().all()
    trained = (summary["epoch"] == 2) & (summary["control"] == "none")
    assert summary.loc[trained, "sslmem_auc"].notna().all()
    assert summary.loc[~trained, "sslmem_auc"].isna().all()
    # LayerMem: SSLMem at each row's embedding (sslmem_* are at sslmem.embedding, backbone)
    layermem = summary.loc[trained].set_index("embedding")
    assert layermem[["layermem_train", "layermem_heldout", "layermem_auc"]].notna().all().all()
    assert layermem.loc["backbone", "layermem_train"] == layermem.loc["backbone", "sslmem_train"]
    assert layermem.loc["projector", "layermem_train"] != layermem.loc["projector", "sslmem_train"]
    html = (work / "results" / "report.html").read_text()
    for needle in ("Figure 3", "Figure 4", "Figure 5", "Methods compared",
                   "One-model test", "One-model memorization confidence", "SSLMem",
                   "Backbone vs projector", "Sample partition", "memorized crops",
                   "RCDM decoders", "Reconstructions from background crops",
                   "Decoding public test images from their own embedding",
                   "Wall time per stage", "git_commit", "data:image/png;base64",
                   "Along depth", "(LayerMem)"):
        assert needle in html
    figures = work / "results" / "figures"
    for name in ("partition", "score_vs_epochs", "shares_vs_epochs", "examples", "depth",
                 "curves_synthetic_vicreg_convnet_8_projector_5_periphery",
                 "rcdm_vicreg_convnet_n8_s0", "rcdm_self_vicreg_convnet_n8_s0",
                 "memorization_vicreg_convnet_n8_s0", "sslmem_vicreg_convnet_n8_s0"):
        assert (figures / f"{name}.png").stat().st_size > 1000, name
        assert (figures / f"{name}.svg").read_text().lstrip().startswith("<?xml"), name


def test_every_job_of_the_tiny_run_stayed_within_the_memory_and_time_it_declared(tiny_run):
    """mem_mb and runtime (dejavu/resources.py, computed from the job's inputs when it was
    about to run) against the job's peak RSS and wall time (its benchmark file), for every
    job that has both."""
    import re
    work, _ = tiny_run
    # the run's own log (later dry runs of the tests that read this run log nothing)
    log = max((path.read_text() for path in (work / ".snakemake" / "log").glob("*.log")),
              key=lambda text: text.count("benchmark: "))
    declared = re.findall(r"benchmark: (\S+)\n(?:.*\n)*?\s+resources: (.*)", log)
    assert len(declared) > 50 and "<TBD>" not in "".join(r for _, r in declared)
    over = {}
    for path, resources in declared:
        asked = dict(re.findall(r"\b(mem_mb|runtime)=(\d+)", resources))
        measured = pd.read_csv(work / path, sep="\t").iloc[0]
        if (measured["max_rss"] >= int(asked["mem_mb"])
                or measured["s"] >= 60 * int(asked["runtime"])):
            over[path] = (measured["max_rss"], measured["s"], asked)
    assert not over, over


def test_snakemake_report_archive_holds_every_figure(tiny_run, tmp_path):
    import zipfile
    work, _ = tiny_run
    snakemake(work, "--configfile", "tiny.yaml", "--report", str(tmp_path / "report.zip"))
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    pngs = {Path(n).name for n in names if n.endswith(".png")}
    assert pngs == {p.name for p in (work / "results" / "figures").glob("*.png")}
    assert any(n.endswith("report.html") for n in names)


def test_tiny_run_is_complete_and_up_to_date(tiny_run):
    work, _ = tiny_run
    assert planned_jobs(work, "--configfile", "tiny.yaml") == {}


def test_a_second_config_reuses_the_dataset_store_it_points_at(tiny_run, tmp_path):
    """Another results folder, the tiny run's dataset store (dataset.store): nothing is
    generated again; the same store with other dataset settings is refused before any job."""
    import yaml
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config["results"] = "elsewhere"
    config["dataset"]["store"] = "results/synthetic/dataset"
    (work / "other.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--configfile", "other.yaml")
    assert "synth" not in jobs and jobs["split"] == 1 and jobs["train"] == 2, jobs
    edit_config(work / "other.yaml", dataset={"seed": 5})
    proc = snakemake(work, "-n", "--configfile", "other.yaml", check=False)
    assert proc.returncode != 0
    assert "dataset.store: results/synthetic/dataset holds a dataset made from other" in \
        proc.stdout + proc.stderr
    assert "dataset.seed: 0 there, 5 here" in proc.stdout + proc.stderr


def test_changing_k_reruns_only_knn_score_report(tiny_run, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", knn={"k": [4]})
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    # the decoders, correlation classifiers and SSLMem are kept: only the samples,
    # conditioned on the new neighbours, are redrawn
    assert set(jobs) == {"knn", "score", "onemodel", "decoder_sample", "summary", "report", "all"}


@pytest.mark.parametrize("change, stages", [
    ({"samples": 3}, {"decoder_sample"}),
    ({"steps": 150}, {"decoder_train", "decoder_sample"}),
])
def test_changing_an_rcdm_setting_reruns_only_its_stages(tiny_run, tmp_path, change, stages):
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", rcdm=change)
    # summary.csv does not depend on the decoders: only the page is redrawn
    assert set(planned_jobs(work, "--configfile", "tiny.yaml")) == stages | {"report", "all"}


def test_torch_knn_backend_reruns_only_knn_and_agrees_with_faiss(tiny_run, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", knn={"backend": "torch", "memory_mb": 16})
    assert set(planned_jobs(work, "--configfile", "tiny.yaml")) == {
        "knn", "score", "onemodel", "decoder_sample", "summary", "report", "all"}
    # one knn job, the trained target's projector search, through the workflow (both
    # backends on many shapes: tests/test_knn.py)
    searched = "results/synthetic/knn/vicreg/convnet/default/n8/s0/A/epoch2/" \
        "periphery-projector-k5.parquet"
    snakemake(work, "-c2", "--configfile", "tiny.yaml", "--", searched)
    faiss_table = pd.read_parquet(tiny_run[0] / searched)
    torch_table = pd.read_parquet(work / searched)
    assert faiss_table.attrs == {"knn_backend": "faiss", "knn_device": "cpu"}
    assert torch_table.attrs == {"knn_backend": "torch", "knn_device": "cpu"}
    assert (faiss_table["prediction"] == torch_table["prediction"]).mean() > 0.95
    agree = [set(a) == set(b) for a, b in zip(faiss_table["neighbors"],
                                               torch_table["neighbors"])]
    assert sum(agree) / len(agree) > 0.95


def test_changing_epochs_reruns_train_and_everything_after(tiny_run, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", train={"epochs": 3})
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    assert set(jobs) == {"train", "snapshot", "embed", "embed_finalize", "index", "knn",
                         "probe", "score", "decoder_train", "decoder_sample", "onemodel",
                         "sslmem", "summary", "report", "all"}
    # the untrained control (epoch 0) is not recomputed: only the new epoch's chain
    assert jobs["train"] == 2 and jobs["embed_finalize"] == 4  # 2 models x (public, crops)


def test_adding_an_epoch_to_the_sweep_computes_only_that_epochs_chain(tiny_run, tmp_path):
    """Epoch 1 joins the sweep of a finished run (epochs 2): no model is retrained; its
    checkpoints continue from the nearest saved state (the untrained model here) and equal
    what the run's own training has at epoch 1; epoch 2's files are untouched."""
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", train={"checkpoints": [1]})
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    assert set(jobs) == {"snapshot", "embed", "embed_finalize", "index", "knn", "probe",
                         "score", "onemodel", "sslmem", "summary", "report", "all"}
    assert jobs["snapshot"] == 2 and jobs["score"] == 2  # (A, B) at epoch 1; 2 embeddings
    models = work / "results" / "synthetic" / "models" / "vicreg" / "convnet" / "n8" / "s0"
    before = {p: p.stat().st_mtime_ns for p in models.rglob("*.pt")}
    snakemake(work, "-c2", "--configfile", "tiny.yaml", "--until", "summary")  # not the page
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert sorted(set(summary["epoch"])) == [0, 1, 2]
    first = pd.read_csv(tiny_run[0] / "results" / "summary.csv")
    kept = summary[summary["epoch"] != 1].reset_index(drop=True)
    # the other epochs' numbers are unchanged; not their place on the frontier, which is
    # drawn among all the rows (an epoch-1 row scoring lower at the same accuracy wins)
    pd.testing.assert_frame_equal(kept.drop(columns="frontier"), first.drop(columns="frontier"))


def test_changing_a_training_hyperparameter_reruns_training(tiny_run, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", train={"lr": 0.002})
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    assert "train" in jobs and not {"synth", "split", "crops", "init"} & set(jobs)


def test_training_past_max_runtime_continues_itself_to_the_same_weights(tiny_run, tmp_path):
    """train.max_runtime shorter than an epoch: the job stops after each epoch at a saved
    state, Snakemake resubmits it, and the state file equals the tiny run's bit for bit.
    The limit is not a training setting: it reruns no stage (only the page, which prints
    the config)."""
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", train={"max_runtime": 0.0001})
    assert set(planned_jobs(work, "--configfile", "tiny.yaml")) <= {"report", "all"}
    state = "results/synthetic/models/vicreg/convnet/default/n8/s0/A/states/epoch2.pt"
    snakemake(work, "-c1", "--configfile", "tiny.yaml", "--forcerun", "train", "--", state)
    log = (work / "results/synthetic/logs/train/vicreg/convnet/default/n8/s0/A.log").read_text()
    # Snakemake starts each attempt's log afresh: the last one says where it came from
    assert "resuming after epoch 1 (the last attempt stopped at its time limit)" in log, log
    assert same_training_states(work, tiny_run[0]) == 2  # the rerun A, and B untouched


def test_killed_run_reruns_to_identical_results(tiny_run, tmp_path):
    """SIGKILL the whole run while a model trains, rerun: the tiny run's summary, bit for
    bit (without the stages after the score, which the rerun does not touch differently)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    work = copy_workflow(tmp_path / "w")
    edit_config(work / "tiny.yaml", **SLIM, **LEAN)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-c2", "--configfile",
                             "tiny.yaml"], cwd=work, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = work / "results" / "synthetic" / "logs" / "train"
    deadline = time.time() + 300
    while not any(logs.rglob("*.log")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before training started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "results" / "summary.csv").exists()
    snakemake(work, "--unlock", "--configfile", "tiny.yaml")
    snakemake(work, "-c2", "--configfile", "tiny.yaml", "--rerun-incomplete")
    rerun = pd.read_csv(work / "results" / "summary.csv")
    first = pd.read_csv(tiny_run[0] / "results" / "summary.csv")
    equal_where_computed(rerun, first)


def test_a_method_of_your_own_is_one_file_and_one_config_entry(tmp_path):
    """docs/methods.md's worked example: examples/align_uniform.py registered from the config,
    trained data-parallel in two processes, scored like the built-in methods, also at a
    backbone stage (its rows in summary.csv, the report's depth figure; LayerMem: the tiny
    run's test); editing the file retrains it."""
    work = copy_workflow(tmp_path / "w")
    shutil.copytree(REPO / "examples", work / "examples")
    edit_config(work / "tiny.yaml", train={
        "method_modules": ["examples/align_uniform.py"], "methods": ["align_uniform"],
        "loss": {"align_uniform": {"uniformity_weight": 0.5}}, "processes": 2},
        # the stages after the score read a method's models like any other's
        **SLIM, embed=LEAN["embed"], knn={"embeddings": ["projector", "block2"]})
    snakemake(work, "-c2", "--configfile", "tiny.yaml")
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert set(summary["method"]) == {"align_uniform"}
    for embedding in ("projector", "block2"):
        rows = summary[summary["embedding"] == embedding]
        assert sorted(rows["control"]) == ["heldout", "none", "untrained"], embedding
        assert rows["score"].notna().all(), embedding
    assert (work / "results" / "figures" / "depth.png").stat().st_size > 0
    log = next((work / "results" / "synthetic" / "logs" / "train").rglob("*.log")).read_text()
    assert "training align_uniform" in log and "2 process(es)" in log
    assert "epoch 2/2 loss" in log and "img/s" in log and "eta" in log
    with open(work / "examples" / "align_uniform.py", "a") as f:
        f.write("# edited\n")
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    assert jobs["train"] == 2 and "synth" not in jobs


def external_config(work, **model) -> None:
    """The tiny config testing only an external model (no method trained)."""
    import yaml
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config["train"]["methods"] = []
    config["external"] = [{"name": "reload", "checkpoint": "elsewhere.pt",
                           "architecture": "convnet", "projector": [64, 64], **model}]
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))


def test_a_model_trained_elsewhere_gets_the_one_model_test_without_training(tiny_run,
                                                                            tmp_path):
    """The tiny run's own model A, loaded through the external-model path (weights-only,
    keys checked), embeds, searches and attacks exactly as the trained model did: the same
    neighbours, and the one-model test's A half to the digit. Nothing is trained."""
    from dejavu.onemodel import onemodel
    from dejavu.attack import score
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    r = work / "results" / "synthetic"
    shutil.copy(r / "models/vicreg/convnet/default/n8/s0/A/epoch2.pt", work / "elsewhere.pt")
    external_config(work)
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    assert set(jobs) == {"import_model", "embed", "embed_finalize", "index", "knn", "onemodel",
                         "summary", "report", "all"}
    snakemake(work, "-c2", "--configfile", "tiny.yaml")
    name = "periphery-projector-k5"
    ours = pd.read_parquet(r / f"knn/external/reload/default/n8/s0/A/epoch1/{name}.parquet")
    trained = pd.read_parquet(r / f"knn/vicreg/convnet/default/n8/s0/A/epoch2/{name}.parquet")
    assert [list(n) for n in ours["neighbors"]] == [list(n) for n in trained["neighbors"]]
    assert (ours["confidence"] == trained["confidence"]).all()
    g_b = pd.read_parquet(r / "correlation/n8/periphery/resnet-B.parquet")
    expected = score.score_half(onemodel.make_half(trained, g_b, "A"), 0.2)
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert set(summary["method"]) == {"external"} and set(summary["backbone"]) == {"reload"}
    row = summary[(summary["embedding"] == "projector") & (summary["control"] == "none")]
    assert row["onemodel_score"].item() == pytest.approx(expected["score"])
    assert row["acc_target"].item() == pytest.approx(expected["acc_target"])
    assert summary["score"].isna().all()  # no reference model: no two-model score
    assert set(summary["control"]) == {"none", "heldout"}
    assert "No model pair was trained" in (work / "results" / "report.html").read_text()


def test_an_external_checkpoint_that_does_not_fit_fails_listing_the_keys(tiny_run, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    shutil.copy(work / "results/synthetic/models/vicreg/convnet/default/n8/s0/A/epoch2.pt",
                work / "elsewhere.pt")
    external_config(work, projector=[64])  # the file's projector has two layers
    target = "results/synthetic/models/external/reload/default/n8/s0/A/epoch1.pt"
    proc = snakemake(work, "-c1", "--configfile", "tiny.yaml", "--", target, check=False)
    assert proc.returncode != 0
    log = (work / "results/synthetic/logs/import_model/external/reload/default/n8/s0/A/epoch1.log")
    text = log.read_text()
    assert "does not fit" in text and "projector.3.weight" in text, text[-2000:]
    assert not (work / target).exists()


def test_knn_backends_agree_on_real_embeddings_of_the_tiny_run(tiny_run):
    from dejavu.attack.embeddings import iter_embeddings, read_embeddings
    from dejavu.attack.knn import search, torch_search
    from test_knn import same_neighbours_up_to_ties
    work, _ = tiny_run
    model = work / "results/synthetic/embed/vicreg/convnet/default/n8/s0/A/epoch2"
    for which in ("projector", "backbone"):
        public, _ = read_embeddings(str(model / "public.zarr"), which)
        crops, _ = read_embeddings(str(model / "crops-periphery.zarr"), which)
        d1, i1 = search(public, crops, 5)
        d2, i2 = torch_search(iter_embeddings(str(model / "public.zarr"), which),
                              len(public), crops, 5, memory_mb=16)
        same_neighbours_up_to_ties(d1, i1, d2, i2)
