"""`snakemake --profile slurm` on a real single-node SLURM cluster started by these tests
(tests/slurm_cluster.py): every job runs as a SLURM job, results equal a local run bit for
bit, and a cancelled job or a killed Snakemake is survived by rerunning the same command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest

from conftest import (HEAD_STARTS, LEAN, SLIM, copy_workflow, edit_config, equal_where_computed,
                      head_start, planned_jobs, popen, same_training_states, snakemake)
from dejavu.cluster import runs_dir, workflow_jobs

pytestmark = pytest.mark.slurm

# The tiny config with fewer jobs (no stage after the score, one embedding, one shard job
# per store, no untrained control): about 22 SLURM jobs per run.
SLURM_SLIM = {**SLIM, **LEAN}
# The executor plugin checks job states first this many seconds after a submission or a
# finished job, then 10 s later each time nothing finished: the profile's 5 s made every
# level of the DAG (jobs of ~6 s here) wait 20 s; 1 s makes it 12 s.
PROFILE_RUN = ["--profile", "slurm", "--configfile", "tiny.yaml",
               "--slurm-init-seconds-before-status-checks", "1"]

# The second live run: into another results folder, its training limited to a time shorter
# than an epoch (limit.yaml, written by the scenario)
SECOND_RUN = [*PROFILE_RUN, "--configfile", "tiny.yaml", "limit.yaml", "--config",
              "results=results_second"]

# The killed run stops after training, where it is killed: its rerun's models are compared
# with the local run's (the cancelled run shows the stages after training on SLURM), which
# spares 10 SLURM jobs, each two Snakemake starts (issue 17: the suite's time)
KILLED_RUN = [*PROFILE_RUN, "--until=train"]


@pytest.fixture
def cluster(test_cluster):
    if test_cluster is not None:
        pytest.skip(test_cluster)


def slim_copy(path):
    work = copy_workflow(path)
    edit_config(work / "tiny.yaml", **SLURM_SLIM)
    return work


def start_run(work, *args, log_name="first"):
    """Snakemake started in the background, its output to a file (no pipe to fill up)."""
    with open(work / f"snakemake-{log_name}.log", "w") as log:
        return popen([sys.executable, "-m", "snakemake", *args], work, log, background=True)


def output_of(work, log_name="first") -> str:
    return (work / f"snakemake-{log_name}.log").read_text()


def jobs_of(work, proc, states: str) -> list[dict]:
    """SLURM jobs submitted by the Snakemake process `proc` (another run may share `work`):
    the run IDs that process recorded at start-up name its jobs."""
    mine = {path.stem for path in runs_dir(str(work)).glob("*.json")
            if json.loads(path.read_text())["pid"] == proc.pid}
    return [job for job in workflow_jobs(str(work), states) if job["name"] in mine]


def act_when_running(runs: dict, rule: str, timeout: float = 300) -> dict:
    """For each run (name: (work, proc, action)), call `action(job)` on the first SLURM job
    of `rule` seen running, submitted by its process `proc`; the jobs acted on, by run. The
    runs are watched together, so one run's job does not finish while the other is awaited."""
    seen, deadline = {}, time.time() + timeout
    while len(seen) < len(runs) and time.time() < deadline:
        for name, (work, proc, action) in runs.items():
            if name in seen:
                continue
            running = [j for j in jobs_of(work, proc, "RUNNING")
                       if j["comment"].startswith(f"rule_{rule}_")]
            if running:
                action(running[0])
                seen[name] = running[0]
            else:
                assert proc.poll() is None, output_of(work)[-3000:]
        time.sleep(0.2)
    assert len(seen) == len(runs), f"no {rule} job seen running within {timeout} s: {seen}"
    return seen


def allocations(work, rule: str) -> list[tuple[int, int, str]]:
    """(nodes, CPUs, memory asked for) of the completed SLURM jobs of `rule` in `work`."""
    out = subprocess.run(["squeue", "-h", "-t", "COMPLETED", "-o", "%Z|%k|%D|%C|%m"],
                         capture_output=True, text=True, check=True).stdout
    return [(int(nodes), int(cpus), memory)
            for directory, comment, nodes, cpus, memory in
            (line.split("|") for line in out.splitlines())
            if os.path.realpath(directory) == os.path.realpath(work)
            and comment.startswith(f"rule_{rule}_")]


def rules_run(work) -> Counter:
    """Rule -> number of SLURM jobs of `work` that completed (MinJobAge keeps them listed)."""
    return Counter(j["comment"].split("_wildcards_")[0].removeprefix("rule_")
                   for j in workflow_jobs(str(work), "COMPLETED"))


@pytest.fixture
def faulted_runs(cluster, tiny_run):
    """The fault runs, and the local tiny run they are compared with."""
    return {**HEAD_STARTS["faulted_runs"].result(), "local_work": tiny_run[0],
            "local": pd.read_csv(tiny_run[0] / "results" / "summary.csv")}


@head_start("faulted_runs", needs_cluster=True)
def run_with_faults(tmp_path_factory):
    """Three copies of the slim tiny workflow at once (SLURM runs mostly wait for the
    executor's polls, so they overlap well), from the session's start while other tests run:
    one whose training job is cancelled; one whose Snakemake is killed (SIGKILL, no
    clean-up) while a model trains; a second live run from the first one's checkout. Then
    the same command again in the first two. Their results are compared with the tiny run's
    (local) by the tests; what SLURM lists of them is taken here, before slurmctld forgets
    finished jobs (MinJobAge)."""
    root = tmp_path_factory.mktemp("runs")
    cancelled, killed = (slim_copy(root / name) for name in ("cancelled", "killed"))
    expected = planned_jobs(cancelled, "--configfile", "tiny.yaml")
    first = {"cancelled": start_run(cancelled, *PROFILE_RUN),
             "killed": start_run(killed, *KILLED_RUN)}
    # a second, live run from the same checkout into another results folder: the rerun
    # below must not take its jobs for a dead run's. Its training jobs stop at a time limit
    # shorter than an epoch and are resubmitted until done (train.max_runtime)
    (cancelled / "limit.yaml").write_text("train: {max_runtime: 0.0001}\n")
    second = start_run(cancelled, *SECOND_RUN, log_name="second")
    orphan_left = []

    def kill(job):  # SIGKILL: no clean-up, the submitted jobs keep running on SLURM
        first["killed"].kill()
        first["killed"].wait()
        orphan_left.append(any(j["id"] == job["id"] for j in workflow_jobs(str(killed))))

    acted = act_when_running({
        "cancelled": (cancelled, first["cancelled"],
                      lambda job: subprocess.run(["scancel", job["id"]], check=True)),
        "killed": (killed, first["killed"], kill)}, "train")
    victim = acted["cancelled"]
    first_rc = first["cancelled"].wait(timeout=900)
    snakemake(killed, "--unlock", *PROFILE_RUN, background=True)  # a killed run's lock
    reruns = [(work, start_run(work, *args, log_name="rerun"))
              for work, args in ((cancelled, PROFILE_RUN), (killed, KILLED_RUN))]
    for work, proc in reruns:
        assert proc.wait(timeout=900) == 0, output_of(work, "rerun")[-5000:]
    assert second.wait(timeout=900) == 0, output_of(cancelled, "second")[-5000:]
    return {"expected": expected, "first_rc": first_rc, "cancelled": cancelled,
            "victim": victim, "killed": killed, "orphan_left": orphan_left == [True],
            "completed": rules_run(cancelled),
            "train_allocations": allocations(cancelled, "train"),
            "second_stopped": Counter(j["comment"].split("_wildcards_")[0]
                                      for j in jobs_of(cancelled, second, "FAILED")),
            "cancelled_jobs": [j["id"] for j in workflow_jobs(str(cancelled), "CANCELLED")]}


def test_profile_runs_every_job_on_slurm_and_survives_a_cancelled_job(faulted_runs):
    runs, work = faulted_runs, faulted_runs["cancelled"]
    assert runs["first_rc"] != 0, "the cancelled job should fail the first run"
    assert "CANCELLED" in output_of(work)
    assert "rule train" in output_of(work, "rerun")  # the same command again retrains
    equal_where_computed(pd.read_csv(work / "results" / "summary.csv"), runs["local"])
    # every job of the DAG but the Snakefile's local rules completed as a SLURM job, once
    # for this run (first attempt and rerun together) and once for the second run
    local = {"all", "synth", "split", "init", "embed_finalize", "score", "summary", "report"}
    assert local < set(runs["expected"])
    expected = {rule: n for rule, n in runs["expected"].items() if rule not in local}
    assert runs["completed"] == {rule: 2 * n for rule, n in expected.items()}
    assert runs["cancelled_jobs"] == [runs["victim"]["id"]]  # none of the live run's
    logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) >= 2 * sum(expected.values())
    assert planned_jobs(work, *PROFILE_RUN) == {}
    # each training job got one node, its CPU and the memory its formula gives
    memory = train_memory(work, "A")
    assert runs["train_allocations"] and \
        set(runs["train_allocations"]) == {(1, 1, f"{memory}M")}, runs["train_allocations"]


def train_memory(work, subset) -> int:
    """dejavu.resources.train for the tiny config (config.yaml under tiny.yaml)."""
    import yaml
    from dejavu import resources
    config = yaml.safe_load((work / "config.yaml").read_text())
    for section, values in yaml.safe_load((work / "tiny.yaml").read_text()).items():
        config[section] = {**config.get(section, {}), **values}
    train, model = config["train"], config["model"]
    split = str(work / "results/synthetic/split/n8/split.parquet")
    return resources.train(n_images=resources.split_count(split, (subset,)),
                           side=config["crop"]["side"], processes=1,
                           batch_size=train["batch_size"], backbone="convnet",
                           width=model["width"], projector=model["projector"],
                           cache_mb=1024, workers=2, prefetch=2, on_cpu=True,
                           small_stem=model["small_stem"])["mem_mb"]


def test_two_live_runs_from_one_checkout_both_finish_with_their_own_results(faulted_runs):
    """The second run shared the checkout with the cancelled run and its rerun, whose start
    cancels a dead run's jobs: it finished, with the results of a run of its own. Its two
    training jobs (2 epochs) each stopped once at train.max_runtime and were continued by
    a resubmitted job: the weights, and so the scores, are the uninterrupted run's."""
    work = faulted_runs["cancelled"]
    equal_where_computed(pd.read_csv(work / "results_second" / "summary.csv"),
                         faulted_runs["local"])
    assert faulted_runs["second_stopped"] == {"rule_train": 2}
    logs = list((work / "results_second/synthetic/logs/train").rglob("*.log"))
    assert len(logs) == 2 and all("the last attempt stopped at its time limit"
                                  in log.read_text() for log in logs)
    assert planned_jobs(work, *SECOND_RUN) == {}


def test_killed_snakemake_is_rerun_to_the_same_results(faulted_runs):
    runs, work = faulted_runs, faulted_runs["killed"]
    assert runs["orphan_left"], "the killed run's training job should outlive it"
    assert same_training_states(work, runs["local_work"]) == 2  # models A and B
    assert planned_jobs(work, *KILLED_RUN) == {}
    assert workflow_jobs(str(work)) == []      # nothing of either run is left running


def test_only_jobs_of_a_dead_run_are_cancelled_before_a_rerun(cluster, tmp_path):
    """What the Snakefile's onstart does: of the jobs still queued or running from this
    directory, those whose submitting run (their SLURM name) was recorded by a process that
    is gone are cancelled and waited for; a live run's, an unrecorded run's and another
    directory's are left alone."""
    from dejavu.cluster import cancel_orphans, register_run
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    gone = subprocess.Popen(["sleep", "60"])  # a main process, recorded, then killed
    register_run(str(here), "run-dead", pid=gone.pid)
    gone.kill()
    gone.wait()
    register_run(str(here), "run-alive")  # this process
    ids = {}
    for name, where, run in (("dead", here, "run-dead"), ("alive", here, "run-alive"),
                             ("unknown", here, "run-unknown"),
                             ("elsewhere", elsewhere, "run-dead")):
        where.mkdir(exist_ok=True)
        out = subprocess.run(["sbatch", "--parsable", "-D", str(where), "-J", run,
                              "--comment", "rule_train_wildcards_x", "-o", "/dev/null",
                              "--wrap", "sleep 300"], capture_output=True, text=True,
                             check=True)
        ids[name] = out.stdout.strip().split(";")[0]
    # queued or running alike (the node has two CPUs: two of the four run, the rest wait;
    # waiting for three to run took the whole minute every time)
    deadline = time.time() + 60
    while len(workflow_jobs(str(here))) < 3 and time.time() < deadline:
        time.sleep(0.5)
    try:
        assert cancel_orphans(str(here)) == [ids["dead"]]
        left = {j["name"]: j["id"] for j in workflow_jobs(str(here))}
        assert left == {"run-alive": ids["alive"], "run-unknown": ids["unknown"]}, left
        assert [j["id"] for j in workflow_jobs(str(elsewhere))] == [ids["elsewhere"]]
        assert [j["id"] for j in workflow_jobs(str(here), "CANCELLED")] == [ids["dead"]]
    finally:
        subprocess.run(["scancel", *ids.values()], check=False)
