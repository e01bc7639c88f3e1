"""A scratch copy of the workflow, for the benches that run it (imported by them as a
sibling module: `python bench/<script>.py` puts bench/ on the path)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = ("Snakefile", "config.yaml", "config", "workflow", "envs", "profiles")


def copy_workflow(work: Path) -> Path:
    """The workflow's files into `work`; over a kept run, its results stay (what it
    computed is not redone: the copies keep the files' times)."""
    work.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, work / name)
    return work


def seeded(work: Path, seed: int, **train) -> str:
    """Writes seed.yaml: the data, split and model seeds set to `seed` (and any `train`
    settings); returns its name, for --configfile."""
    overlay = {"dataset": {"seed": seed}, "split": {"seed": seed},
               "train": {"seeds": [seed], **train}}
    (work / "seed.yaml").write_text(yaml.safe_dump(overlay))
    return "seed.yaml"


def snakemake(work: Path, *args: str) -> None:
    """Runs Snakemake in `work`, its output in work/snakemake.log (kept with the run); exits
    with the log's end when it fails."""
    with open(work / "snakemake.log", "w") as log:
        done = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work,
                              stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"Snakemake failed in {work}; its output ends:\n"
                 + (work / "snakemake.log").read_text()[-5000:])
