"""SLURM housekeeping for the workflow's main process.

When the Snakemake process that submitted jobs dies without cleaning up (SIGKILL, a lost
login session), its jobs keep running. A rerun would submit the same jobs again while the
orphans still write the same files. But two live runs may share a working directory (another
`--configfile`, another `results:` folder: Snakemake locks outputs, not directories), so a
job is cancelled only when its submitting run is known to be dead. Each main process records
itself at start (`register_run`: its SLURM run ID, which the executor plugin gives every job
as its name, with host, PID and the PID's start time under `.snakemake/dejavu-runs/`);
`cancel_orphans` cancels the jobs whose run's process is gone from this host, and waits for
them to stop. Jobs of an unrecorded run, or of a run on another host, are left alone.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path

log = logging.getLogger(__name__)
ACTIVE = "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED,REQUEUED,RESIZING"


def workflow_jobs(workdir: str, states: str = ACTIVE) -> list[dict]:
    """SLURM jobs of this user submitted by Snakemake from `workdir` (id, state, comment)."""
    if not shutil.which("squeue"):
        return []
    proc = subprocess.run(["squeue", "-h", "-u", getpass.getuser(), "-t", states,
                           "-o", "%i|%T|%Z|%j|%k"], capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    here = os.path.realpath(workdir)
    jobs = []
    for line in proc.stdout.splitlines():
        job_id, state, directory, name, comment = (line.split("|", 4) + [""] * 4)[:5]
        if os.path.realpath(directory) == here and comment.startswith("rule_"):
            jobs.append({"id": job_id, "state": state, "name": name, "comment": comment})
    return jobs


def runs_dir(workdir: str) -> Path:
    return Path(workdir) / ".snakemake" / "dejavu-runs"


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command in brackets


def register_run(workdir: str, run_id: str, pid: int | None = None) -> Path:
    """Record that run `run_id` (its jobs' SLURM name) is this main process."""
    pid = pid or os.getpid()
    path = runs_dir(workdir) / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{pid}")  # renamed into place: never read half written
    tmp.write_text(json.dumps({"host": socket.gethostname(), "pid": pid,
                               "start": process_start(pid)}))
    os.replace(tmp, path)
    return path


def run_is_dead(workdir: str, run_id: str) -> bool:
    """True only when run `run_id` was recorded on this host and its process is gone."""
    path = runs_dir(workdir) / f"{run_id}.json"
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        return False  # unrecorded: it may be alive somewhere
    if run["host"] != socket.gethostname():
        return False  # cannot tell from here
    return process_start(run["pid"]) != run["start"]  # gone, or the PID now someone else's


def slurm_run_id(workflow) -> str | None:
    """The SLURM executor plugin's run ID (every job's name), when it is the executor.

    Snakemake has no public way to it: it is read from the executor object
    (`workflow.scheduler._executor.run_uuid`). Where a Snakemake version keeps it elsewhere,
    this warns, naming the version, and returns None: orphan cancellation is then off."""
    plugin = getattr(workflow, "executor_plugin", None)
    if getattr(plugin, "name", None) != "slurm":
        return None
    executor = getattr(getattr(workflow, "scheduler", None), "_executor", None)
    run_id = getattr(executor, "run_uuid", None)
    if run_id is None:
        from importlib.metadata import version
        warnings.warn(
            f"dejavu cannot find the SLURM run ID in Snakemake {version('snakemake')} "
            f"(workflow.scheduler._executor.run_uuid): jobs left by a killed earlier run "
            f"will not be cancelled; cancel them by hand (squeue, scancel) before a rerun",
            RuntimeWarning, stacklevel=2)
    return run_id


def cancel_orphans(workdir: str, timeout: float = 120) -> list[str]:
    """Cancel the jobs dead main processes left in `workdir`; wait until they are gone."""
    orphans = [job["id"] for job in workflow_jobs(workdir) if run_is_dead(workdir, job["name"])]
    if not orphans:
        return []
    log.warning("cancelling %d SLURM jobs left by an earlier run: %s", len(orphans), orphans)
    subprocess.run(["scancel", *orphans], check=False)
    deadline = time.time() + timeout
    while time.time() < deadline and any(job["id"] in orphans
                                         for job in workflow_jobs(workdir)):
        time.sleep(1)
    return orphans
