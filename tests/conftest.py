"""Helpers to run the real workflow in a temporary copy of the repository."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def answering_slurm_controller(request):
    """Where SLURM's client tools are installed (the SLURM tests install them), the executor
    plugin runs `scontrol show config` at every Snakemake start, which waits 9 s for a
    controller that is down. So a session that starts Snakemake keeps the test cluster up
    from its first test to its last (tests/slurm_cluster.py)."""
    import slurm_cluster
    starts_snakemake = any(item.get_closest_marker(tier) for item in request.session.items
                           for tier in ("workflow", "slow", "slurm"))
    if not (starts_snakemake and slurm_cluster.have_slurm() and os.geteuid() == 0):
        yield
        return
    slurm_cluster.start()
    try:
        yield
    finally:
        slurm_cluster.stop()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config run once, end to end, in a temporary copy of the workflow."""
    work = copy_workflow(tmp_path_factory.mktemp("tiny") / "dejavu")
    proc = snakemake(work, "-c2", "--configfile", "tiny.yaml")
    return work, proc


# What a test costs, one marker each (README, "Tests"): `python -m pytest -m unit` is the
# inner loop; plain `python -m pytest` runs every tier.
TIERS = {
    "unit": "no Snakemake start and no workflow run (seconds)",
    "workflow": "runs or dry-runs the DAG with Snakemake (a tiny run: a minute or two)",
    "slow": "the known-answer sweep (about ten minutes)",
    "slurm": "the workflow on a real single-node SLURM cluster (minutes)",
}
WORKFLOW_FIXTURES = {"tiny_run"}


def pytest_configure(config):
    for name, what in TIERS.items():
        config.addinivalue_line("markers", f"{name}: {what}")


def tier_problems(items) -> list[str]:
    """Tests without exactly one tier marker, and unit tests that use a workflow run."""
    problems = []
    for item in items:
        tiers = {m.name for m in item.iter_markers()} & set(TIERS)
        if len(tiers) != 1:
            problems.append(f"{item.nodeid}: tier markers {sorted(tiers) or 'none'}, "
                            f"needs exactly one of {sorted(TIERS)}")
        elif tiers == {"unit"} and WORKFLOW_FIXTURES & set(item.fixturenames):
            problems.append(f"{item.nodeid}: marked unit but uses a workflow run")
    return problems


def pytest_collection_modifyitems(config, items):
    """Refuse a test without its tier marker; run the SLURM tests last: on a machine without
    SLURM they install it, and once its client tools are installed every Snakemake start
    asks the controller for its configuration (answering_slurm_controller)."""
    problems = tier_problems(items)
    if problems:
        raise pytest.UsageError("every test needs one tier marker:\n  " +
                                "\n  ".join(problems))
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)
