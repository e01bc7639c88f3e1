"""Variants, sweeps and recipes on the finished tiny run: what they train, what they leave
alone, and what the summary and report say of them (their settings: tests/test_variants.py)."""

import shutil

import pandas as pd
import pytest

from conftest import SLIM, edit_config, equal_where_computed, planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def test_a_variant_is_trained_scored_and_placed_on_the_frontier(tiny_run, tmp_path):
    """Three lines of YAML add a variant to the finished tiny run, and one a sweep: their
    models are trained (narrower, another VICReg coefficient; the sweep's new coefficient),
    evaluated like the default's, which are kept, and they get their change against
    default, their place on the frontier and the sweep its figure; changing a variant's
    settings retrains only its models. (A backbone stage attacked beside the projector:
    the own-method test; attacking one here would re-embed the default's models too.)"""
    import yaml
    from dejavu.core.models import load_checkpoint
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    edit_config(work / "tiny.yaml", knn={"embeddings": ["projector"]},
                controls={"untrained": False},
                **{k: v for k, v in SLIM.items() if k != "probe"})  # the probe is utility
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config["variants"] = [{"name": "narrow", "model": {"width": 4},
                           "train": {"loss": {"vicreg": {"sim_coeff": 10.0}}}}]
    # a sweep of one setting: 25 is the default run's own coefficient, 5 a new pair
    config["sweeps"] = [{"setting": "train.loss.vicreg.sim_coeff", "values": [25.0, 5.0]}]
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    assert jobs["train"] == 4 and jobs["init"] == 4 and "synth" not in jobs  # their pairs only
    snakemake(work, "-c2", "--configfile", "tiny.yaml")
    summary = pd.read_csv(work / "results" / "summary.csv")
    reference = pd.read_csv(tiny_run[0] / "results" / "summary.csv")
    assert set(summary["variant"]) == {"default", "narrow", "sim_coeff_5"}
    swept = summary[summary["variant"] == "sim_coeff_5"]
    assert set(swept["sweep"]) == {"train.loss.vicreg.sim_coeff"}
    assert set(swept["sweep_value"]) == {5.0} and set(summary["recipe"]) == {"shared"}
    assert summary.loc[summary["variant"] != "sim_coeff_5", "sweep"].isna().all()
    sweep_rows = pd.read_csv(work / "results/figures/sweep_train_loss_vicreg_sim_coeff.csv")
    assert sorted(set(sweep_rows["x"])) == [5.0, 25.0]  # the default run at its value
    summary = summary[summary["variant"] != "sim_coeff_5"]
    # the default's rows are the tiny run's (the frontier is drawn among other runs)
    projector = summary[summary["embedding"] == "projector"]
    equal_where_computed(projector[projector["variant"] == "default"].drop(columns="frontier"),
                         reference.drop(columns="frontier"))
    assert summary.loc[summary["control"] == "none", "score"].notna().all()
    ours = projector[(projector["variant"] == "narrow") & (projector["control"] == "none")]
    theirs = summary[(summary["variant"] == "default") & (summary["control"] == "none")
                     & (summary["embedding"] == "projector") & (summary["epoch"] == 2)]
    assert len(ours) == 1 and len(theirs) == 1
    ours, theirs = ours.iloc[0], theirs.iloc[0]
    assert ours["score_change"] == pytest.approx(ours["score"] - theirs["score"])
    assert ours["score_change_ci_low"] <= ours["score_change_ci_high"]
    for utility in ("probe_test_acc", "knn_test_acc"):
        assert ours[f"{utility}_change"] == pytest.approx(ours[utility] - theirs[utility])
        assert ours[f"{utility}_change_ci_low"] <= ours[f"{utility}_change_ci_high"]
    assert summary["frontier"].any()
    narrow = work / "results/synthetic/models/vicreg/convnet/narrow/n8/s0/A/epoch2.pt"
    assert load_checkpoint(str(narrow))[0].backbone.out_dim == 4 * 8
    figures = work / "results" / "figures"
    assert (figures / "frontier.png").stat().st_size > 0
    changes = pd.read_csv(figures / "mitigations.csv")
    assert list(zip(changes["variant"], changes["embedding"])) == [
        ("narrow", "projector"), ("sim_coeff_5", "projector")]
    assert (figures / "sweep_train_loss_vicreg_sim_coeff.png").stat().st_size > 0
    config["variants"][0]["train"]["lr"] = 0.01
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--configfile", "tiny.yaml")
    assert jobs["train"] == 2 and "init" not in jobs and "crops" not in jobs


def test_a_methods_recipe_reruns_its_models_only(tiny_run, tmp_path):
    """SimCLR joins the finished tiny run with a recipe of its own: only its pair is
    planned (VICReg's models are kept); a recipe for VICReg too plans VICReg's training
    again, for its changed settings (its architecture unchanged: not its initial weights)."""
    import yaml
    work = tmp_path / "w"
    shutil.copytree(tiny_run[0], work)
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config["train"]["methods"] = ["vicreg", "simclr"]
    config["recipes"] = {"simclr": {"model": {"projector": [64, 32]},
                                    "train": {"lr": 0.01, "loss": {"simclr": {"temperature": 0.2}}}}}
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(work, "-n", "--configfile", "tiny.yaml", "--until", "train")
    assert "vicreg/" not in proc.stdout and proc.stdout.count("rule train:") == 2
    config["recipes"]["vicreg"] = {"train": {"weight_decay": 0.01}}
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--configfile", "tiny.yaml", "--until", "train")
    assert jobs == {"init": 2, "train": 4}, jobs  # SimCLR's new pair, VICReg's retrained
    proc = snakemake(work, "-n", "--configfile", "tiny.yaml", "--until", "train")
    vicreg = [job for job in proc.stdout.split("rule train:")[1:] if "vicreg/" in job]
    assert len(vicreg) == 2 and all("params" in job.split("reason:")[1].splitlines()[0]
                                    for job in vicreg), vicreg
