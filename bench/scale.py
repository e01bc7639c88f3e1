"""Does a stage's memory follow its batch and chunk settings, not the dataset's size?

Runs the real workflow on the synthetic benchmark with two training-set sizes in one sweep
(`split.npc: [N, 4N]`, every stage on, a few epochs, 96 px images seen at 64 px) and, for
every rule with jobs at both sizes, prints its peak RSS (Snakemake's benchmark files) and
wall time at each size beside the growth of the data it reads. The target: a rule's peak
grows by at most a quarter of its data's growth plus 64 MB (noise), except the rules that
hold a growing table by design (NAMED: their formula is in dejavu/resources.py). It also
checks every job's peak against the memory it declared.

    python bench/scale.py                 # N = 100 per class: about 10 minutes on 2 cores
    python bench/scale.py --npc 25 --keep runs/scale

Training streams its set here (`train.loader.cache_mb: 8`): a set that fits the cache is
held whole, by design, and would grow with N.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml
import rehearsal
from scratch import copy_workflow, snakemake
MB = 2**20
CANVAS, SIDE, CLASSES = 96, 64, 10
NAMED = {  # what grows by design (dejavu/resources.py)
    "knn": "the queries' embeddings and their neighbours",
    "probe": "the training set's embeddings",
    "correlation": "training crops up to 1 GB and every crop's probabilities",
}


def overlay(npc: int) -> dict:
    return {
        "dataset": {"images_per_class": 8 * npc + 20 + 100, "classes": CLASSES,
                    "image_size": CANVAS},
        "split": {"npc": [npc, 4 * npc], "heldout_fraction": 0.0,
                  "public_test_per_class": 20},
        "crop": {"side": SIDE},
        "train": {"epochs": 2, "warmup_epochs": 1, "loader": {"cache_mb": 8}},
        "knn": {"k": [10]},
        "score": {"bootstrap": 50},
        "rcdm": {"steps": 20, "warmup_steps": 5, "sample_steps": 5, "samples": 1, "examples": 2,
                 "self_images": 10},
        "onemodel": {"resnet": {"depth": 10, "width": 4, "epochs": 2, "batch_size": 64}},
        "sslmem": {"views": 2},
        "probe": {"steps": 20},
        "unitmem": {"enabled": True, "views": 2},
        "removal": {"enabled": True, "counts": [npc], "kinds": ["memorized"]},
    }


def run(npc: int, work: Path) -> None:
    copy_workflow(work)
    (work / "scale.yaml").write_text(yaml.safe_dump(overlay(npc)))
    snakemake(work, "-c2", "--configfile", "scale.yaml")


def data_read(rule: str, split: pd.DataFrame) -> float:
    """MB of pixels a job of `rule` reads at one size, from its split table: the training
    set (train, snapshot, probe, unitmem), the attacked images (crops: stored canvases;
    sslmem, the crop embeddings and classifiers, the removal lists: what they were made from
    at the model's side)."""
    attacked = int(split["attacked"].sum())
    if rule in ("train", "snapshot", "probe", "unitmem"):
        return int((split["set"] == "A").sum()) * SIDE * SIDE * 3 / MB
    if rule == "crops":
        return attacked * CANVAS * CANVAS * 3 / MB
    return attacked * SIDE * SIDE * 3 / MB


def jobs(work: Path) -> pd.DataFrame:
    """Every job: rule, size, peak RSS and wall time (benchmark file), declared mem_mb
    (`rehearsal.jobs`, which reads them from the run's Snakemake logs)."""
    table = rehearsal.jobs(work)
    size = table["job"].str.extract(r"/n(\d+)/")[0]
    return table.assign(size=pd.to_numeric(size), wall_s=60 * table["wall_min"])


def report(work: Path, npc: int) -> bool:
    table = jobs(work)
    splits = {n: pd.read_parquet(next(work.glob(f"results/*/split/n{n}/split.parquet")))
              for n in (npc, 4 * npc)}
    print(f"synthetic benchmark, {CLASSES} classes, {CANVAS} px images at {SIDE} px, "
          f"{npc} vs {4 * npc} images per class in A and B")
    print(f"{'rule':15s} {'peak N':>7s} {'peak 4N':>8s} {'growth':>7s} {'data N':>7s} "
          f"{'data 4N':>8s} {'limit':>6s} {'wall N':>7s} {'wall 4N':>8s}  verdict")
    ok = True
    sized = table.dropna(subset=["size"])
    for rule, part in sized.groupby("rule"):
        at = {n: part[part["size"] == n] for n in (npc, 4 * npc)}
        if any(a.empty for a in at.values()):
            continue
        peak = {n: a["peak_mb"].max() for n, a in at.items()}
        wall = {n: a["wall_s"].max() for n, a in at.items()}
        data = {n: data_read(rule, splits[n]) for n in at}
        growth, limit = peak[4 * npc] - peak[npc], 0.25 * (data[4 * npc] - data[npc]) + 64
        verdict = "ok" if growth <= limit else (
            f"named: {NAMED[rule]}" if rule in NAMED else "OVER")
        ok &= verdict != "OVER"
        print(f"{rule:15s} {peak[npc]:7.0f} {peak[4 * npc]:8.0f} {growth:+7.0f} "
              f"{data[npc]:7.0f} {data[4 * npc]:8.0f} {limit:6.0f} {wall[npc]:7.1f} "
              f"{wall[4 * npc]:8.1f}  {verdict}")
    over = table[table["peak_mb"] >= table["declared_mb"]]
    print(f"\n{len(table)} jobs; peak RSS below declared mem_mb in "
          f"{len(table) - len(over)}, closest {(table['peak_mb'] / table['declared_mb']).max():.2f}"
          f" of it")
    for _, job in over.iterrows():
        print(f"  over: {job['job']} peak {job['peak_mb']:.0f} MB, declared {job['declared_mb']}")
    return ok and over.empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npc", type=int, default=100, help="N, images per class")
    parser.add_argument("--keep", type=Path, help="run here and keep it")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.npc, args.keep)
        ok = report(args.keep, args.npc)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(args.npc, Path(tmp))
            ok = report(Path(tmp), args.npc)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
