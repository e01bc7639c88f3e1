"""Per-row memory of the table stages: the split and the score at two row counts, each in a
process of its own, grow by no more per row than dejavu/resources.py declares for them (the
per-row slopes of the ImageNet-shaped rehearsal, `python bench/rehearsal.py`, are in
docs/benchmarks.md). A stage that held a crops x classes table, or the whole index with its
boxes as Python lists, grows by kilobytes per row more and fails here."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dejavu import resources

pytestmark = pytest.mark.unit

MB = 2**20


def peak_mb(code: str) -> float:
    """Peak RSS (MB) of a fresh interpreter that runs `code`."""
    probe = f"{code}\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[-1]) / 1024


def slope(make_input, run_code: str, sizes: tuple[int, int], tmp_path) -> float:
    """Bytes per row between the peaks of `run_code` on inputs of the two sizes."""
    peaks = []
    for n in sizes:
        folder = tmp_path / str(n)
        folder.mkdir()
        make_input(folder, n)
        peaks.append(peak_mb(run_code.format(folder=folder)))
    return (peaks[1] - peaks[0]) * MB / (sizes[1] - sizes[0])


def index_of(folder, n: int, classes: int = 100) -> None:
    """An index of n images over `classes` classes, one box each, with details like the
    synthetic benchmark's (lists the split must not read)."""
    pd.DataFrame({"id": [f"img-{i:08d}" for i in range(n)],
                  "label": np.arange(n) % classes,
                  "boxes": [[[0, 0, 4, 4]]] * n, "details": [[[0.5] * 7] * 2] * n,
                  "height": 16, "width": 16}).to_parquet(folder / "index.parquet")


def knn_tables(folder, n: int) -> None:
    """Two k-NN tables of n attacked crops (half in A, half in B)."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        pd.DataFrame({"id": [f"img-{i:08d}" for i in range(n)],
                      "set": np.where(np.arange(n) < n // 2, "A", "B"),
                      "correct": rng.random(n) < 0.5, "confidence": rng.random(n),
                      "mean_distance": rng.random(n),
                      "neighbors": list(rng.integers(0, n, (n, 8)))}
                     ).to_parquet(folder / f"{name}.parquet")


def test_the_split_grows_by_what_it_declares_per_index_row(tmp_path):
    per_row = slope(index_of, """
from dejavu.data import split
split.run("{folder}/index.parquet", "{folder}/split.parquet", "{folder}/sizes.csv", npc=20,
          heldout_fraction=0.0, public_test_per_class=10)""", (40_000, 200_000), tmp_path)
    print(f"split: {per_row:.0f} bytes per index row (declared {resources.SPLIT_BYTES_PER_ROW})")
    assert per_row <= resources.SPLIT_BYTES_PER_ROW, per_row


def test_the_score_grows_by_what_it_declares_per_crop(tmp_path):
    # one chunk of resamples holds what a thousand hold: BOOT_CHUNK of them at once
    per_crop = slope(knn_tables, """
from dejavu.attack import score
score.run("{folder}/a.parquet", "{folder}/b.parquet", "{folder}/s.json", "{folder}/c.parquet",
          epoch=1, p=0.2, p_grid=[0.1, 0.5], n_boot=64, seed=0, combination={{}})""",
                     (20_000, 100_000), tmp_path)
    declared = (resources.score(n_crops=10**6) - resources.score(n_crops=0)) * MB / 10**6
    print(f"score: {per_crop:.0f} bytes per attacked crop (declared {declared:.0f})")
    assert per_crop <= declared, (per_crop, declared)
