"""Debian packages the suite installs where they are missing and it may (CI, as root): SLURM
for the SLURM tier (slurm_cluster.py), Chromium for the report's browser test."""

from __future__ import annotations

import os
import shutil
import subprocess


def install(packages: list[str], what: str) -> str | None:
    """apt-get install `packages` (without recommends); None on success, else why not."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{what} is not installed and this is not a root Debian machine"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, capture_output=True).returncode == 0:
        return None  # the package lists were fresh enough
    for cmd in (["apt-get", "update", "-qq"], install):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed: {proc.stderr[-500:]}"
    return None
