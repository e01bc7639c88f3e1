"""SLURM housekeeping for the workflow's main process.

When the Snakemake process that submitted jobs dies without cleaning up (SIGKILL, a lost
login session), its jobs keep running. A rerun would submit the same jobs again while the
orphans still write the same files. Snakemake's directory lock allows one main process per
working directory, so a job of this working directory still queued or running when a new
main process starts belongs to a dead one: `cancel_orphans` cancels such jobs and waits for
them to stop before anything is scheduled.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import subprocess
import time

log = logging.getLogger(__name__)
ACTIVE = "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED,REQUEUED,RESIZING"


def workflow_jobs(workdir: str, states: str = ACTIVE) -> list[dict]:
    """SLURM jobs of this user submitted by Snakemake from `workdir` (id, state, comment)."""
    if not shutil.which("squeue"):
        return []
    proc = subprocess.run(["squeue", "-h", "-u", getpass.getuser(), "-t", states,
                           "-o", "%i|%T|%Z|%k"], capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    here = os.path.realpath(workdir)
    jobs = []
    for line in proc.stdout.splitlines():
        job_id, state, directory, comment = (line.split("|", 3) + ["", "", ""])[:4]
        if os.path.realpath(directory) == here and comment.startswith("rule_"):
            jobs.append({"id": job_id, "state": state, "comment": comment})
    return jobs


def cancel_orphans(workdir: str, timeout: float = 120) -> list[str]:
    """Cancel the jobs a dead main process left in `workdir`; wait until they are gone."""
    orphans = [job["id"] for job in workflow_jobs(workdir)]
    if not orphans:
        return []
    log.warning("cancelling %d SLURM jobs left by an earlier run: %s", len(orphans), orphans)
    subprocess.run(["scancel", *orphans], check=False)
    deadline = time.time() + timeout
    while time.time() < deadline and any(job["id"] in orphans
                                         for job in workflow_jobs(workdir)):
        time.sleep(1)
    return orphans
