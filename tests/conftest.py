"""Helpers to run the real workflow in a temporary copy of the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config", "workflow", "envs", "slurm",
                  "profiles")


def copy_workflow(dst: Path) -> Path:
    """A runnable copy of the workflow (the package itself is installed)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / name)
    for name in ("tiny.yaml", "tiny_imagenet.yaml"):
        shutil.copy(REPO / "tests" / name, dst / name)
    return dst


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


def planned_jobs(cwd: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of what a dry run says it would run."""
    out = snakemake(cwd, "-n", *args).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    jobs = dict(line.split() for line in table if line.strip())
    jobs.pop("total", None)
    return {rule: int(n) for rule, n in jobs.items()}


def edit_config(path: Path, **changes: dict) -> None:
    """Update sections of a YAML config file in place."""
    config = yaml.safe_load(path.read_text()) or {}
    for section, values in changes.items():
        config.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config run once, end to end, in a temporary copy of the workflow."""
    work = copy_workflow(tmp_path_factory.mktemp("tiny") / "dejavu")
    proc = snakemake(work, "-c2", "--configfile", "tiny.yaml")
    return work, proc


def pytest_collection_modifyitems(config, items):
    """Run the SLURM tests last. They install and start a cluster, then stop it; once SLURM's
    client tools are installed, every later Snakemake start pays about 9 s while the
    executor plugin's `scontrol show config` waits for the stopped controller."""
    items.sort(key=lambda item: item.module.__name__ == "test_slurm")
