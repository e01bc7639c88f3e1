"""A scratch copy of the workflow, for the benches that run it (imported by them as a
sibling module: `python bench/<script>.py` puts bench/ on the path)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
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
    if any((work / ".snakemake" / "locks").glob("*")):  # a kept run that was killed: one
        subprocess.run([sys.executable, "-m", "snakemake", "--unlock", *args], cwd=work,
                       capture_output=True)  # bench run per folder, so the lock is stale
    with open(work / "snakemake.log", "w") as log:
        done = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work,
                              stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"Snakemake failed in {work}; its output ends:\n"
                 + (work / "snakemake.log").read_text()[-5000:])


def seed_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a bench run at several data/model seeds: --seeds, --keep,
    --check (the script's own arguments are added to it)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=Path, help="run here and keep it (default: a temp dir)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a finding fails")
    return parser


def over_seeds(keep: Path | None, seeds: list[int], run, folder: str = "") -> list:
    """run(seed, work) for each seed, each in `keep`/`folder`/seed<N> (reused when kept)
    or in a temporary folder; their results, read before a temporary folder goes."""
    with tempfile.TemporaryDirectory() as tmp:
        base = (keep or Path(tmp)) / folder
        return [run(seed, base / f"seed{seed}") for seed in seeds]


def seed_main(doc: str, run, table, findings, title: str, number: str = "{:+.3f}") -> None:
    """A bench script's main at several seeds: run each (`over_seeds`), print `title`
    (`{seeds}` filled in) and `table` of every seed's rows, then the verdict on `findings`
    (with --check, exit 1 when one breaks)."""
    import pandas as pd
    args = seed_parser(doc).parse_args()
    rows = pd.concat(over_seeds(args.keep, args.seeds, run), ignore_index=True)
    print(title.format(seeds=args.seeds))
    print(table(rows).to_string(index=False, float_format=number.format))
    verdict(findings(rows), args.check)


def verdict(broken: list[str], check: bool) -> None:
    """Print whether the findings hold; with --check, exit 1 when one does not."""
    print("findings: " + ("hold" if not broken else "BROKEN\n  " + "\n  ".join(broken)))
    if check and broken:
        sys.exit(1)

