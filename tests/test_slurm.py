"""`snakemake --profile slurm` on a real single-node SLURM cluster started by these tests
(tests/slurm_cluster.py): every job runs as a SLURM job, results equal a local run bit for
bit, and a cancelled job or a killed Snakemake is survived by rerunning the same command."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest

import slurm_cluster
from conftest import copy_workflow, edit_config, planned_jobs, snakemake
from dejavu.cluster import workflow_jobs

pytestmark = pytest.mark.slurm

# The tiny config with fewer jobs (one embedding, one shard job per store, no untrained
# control): about 22 SLURM jobs per run.
SLIM = {"knn": {"embeddings": ["projector"]}, "embed": {"jobs": 1},
        "controls": {"untrained": False}, "probe": {"enabled": False},
        "rcdm": {"enabled": False}, "onemodel": {"enabled": False},
        "sslmem": {"enabled": False}}
# The executor plugin checks job states first this many seconds after a submission or a
# finished job, then 10 s later each time nothing finished: the profile's 5 s made every
# level of the DAG (jobs of ~6 s here) wait 20 s; 1 s makes it 12 s.
PROFILE_RUN = ["--profile", "slurm", "--configfile", "tiny.yaml",
               "--slurm-init-seconds-before-status-checks", "1"]


@pytest.fixture(scope="module")
def cluster():
    why = slurm_cluster.install()
    if why:
        pytest.skip(why)
    slurm_cluster.start()
    try:
        yield
    finally:
        slurm_cluster.stop()


def slim_copy(path):
    work = copy_workflow(path)
    edit_config(work / "tiny.yaml", **SLIM)
    return work


@pytest.fixture(scope="module")
def local_summary(tmp_path_factory):
    work = slim_copy(tmp_path_factory.mktemp("local") / "w")
    expected = planned_jobs(work, "--configfile", "tiny.yaml")
    snakemake(work, "-c2", "--configfile", "tiny.yaml")
    return pd.read_csv(work / "results" / "summary.csv"), expected


def start_run(work):
    return subprocess.Popen([sys.executable, "-m", "snakemake", *PROFILE_RUN], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_running(work, rule, proc, timeout=300):
    """The first SLURM job of `rule` that is running, submitted from `work`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        running = [j for j in workflow_jobs(str(work), "RUNNING")
                   if j["comment"].startswith(f"rule_{rule}_")]
        if running:
            return running[0]
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"no {rule} job started within {timeout} s")


def rules_run(work) -> Counter:
    """Rule -> number of SLURM jobs of `work` that completed (MinJobAge keeps them listed)."""
    return Counter(j["comment"].split("_wildcards_")[0].removeprefix("rule_")
                   for j in workflow_jobs(str(work), "COMPLETED"))


def test_profile_runs_every_job_on_slurm_and_survives_a_cancelled_job(cluster, local_summary,
                                                                        tmp_path):
    summary, expected = local_summary
    work = slim_copy(tmp_path / "w")
    proc = start_run(work)
    victim = wait_for_running(work, "train", proc)
    subprocess.run(["scancel", victim["id"]], check=True)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode != 0, "the cancelled job should fail the first run"
    assert "CANCELLED" in out
    rerun = snakemake(work, *PROFILE_RUN)       # the same command again
    assert "rule train" in rerun.stdout + rerun.stderr
    pd.testing.assert_frame_equal(pd.read_csv(work / "results" / "summary.csv"), summary,
                                  check_exact=True)
    # every job of the DAG (but the local target rule `all`) completed as a SLURM job, once
    completed = rules_run(work)
    expected = {rule: n for rule, n in expected.items() if rule != "all"}
    assert completed == expected
    cancelled = workflow_jobs(str(work), "CANCELLED")
    assert [j["id"] for j in cancelled] == [victim["id"]]
    logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) >= sum(expected.values())
    assert planned_jobs(work, *PROFILE_RUN) == {}


def test_killed_snakemake_is_rerun_to_the_same_results(cluster, local_summary, tmp_path):
    summary, expected = local_summary
    work = slim_copy(tmp_path / "w")
    proc = start_run(work)
    orphan = wait_for_running(work, "train", proc)
    proc.kill()  # SIGKILL: no clean-up, the submitted jobs keep running on SLURM
    proc.wait()
    assert any(j["id"] == orphan["id"] for j in workflow_jobs(str(work)))
    snakemake(work, "--unlock", *PROFILE_RUN)  # the lock a killed process leaves
    snakemake(work, *PROFILE_RUN)              # the orphan is cancelled or done by now
    pd.testing.assert_frame_equal(pd.read_csv(work / "results" / "summary.csv"), summary,
                                  check_exact=True)
    assert planned_jobs(work, *PROFILE_RUN) == {}
    assert workflow_jobs(str(work)) == []      # nothing of either run is left running


def test_jobs_left_by_a_dead_run_are_cancelled_before_a_rerun(cluster, tmp_path):
    """What the Snakefile's onstart does: a job still running from this directory belongs to
    a dead main process (the lock admits one), so it is cancelled and waited for."""
    from dejavu.cluster import cancel_orphans
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    ids = {}
    for name, where in (("here", here), ("elsewhere", elsewhere)):
        where.mkdir()
        out = subprocess.run(["sbatch", "--parsable", "-D", str(where), "--comment",
                              "rule_train_wildcards_x", "-o", "/dev/null", "--wrap",
                              "sleep 300"], capture_output=True, text=True, check=True)
        ids[name] = out.stdout.strip().split(";")[0]
    deadline = time.time() + 60
    while len(workflow_jobs(str(here), "RUNNING")) < 1 and time.time() < deadline:
        time.sleep(0.5)
    try:
        assert cancel_orphans(str(here)) == [ids["here"]]
        assert workflow_jobs(str(here)) == []
        assert [j["id"] for j in workflow_jobs(str(elsewhere))] == [ids["elsewhere"]]
        assert [j["id"] for j in workflow_jobs(str(here), "CANCELLED")] == [ids["here"]]
    finally:
        subprocess.run(["scancel", *ids.values()], check=False)
