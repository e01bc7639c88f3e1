"""Memory of the k-NN stage after its search, per neighbour: what `dejavu.resources.knn`'s
BYTES_PER_NEIGHBOUR must cover at ImageNet's shape (1,000 classes, k = 100, every crop's
neighbours spread over many classes, as a weak model's are).

Each size runs in a fresh process: search results of that many crops (random ids into a
631,000-image public set, sorted float32 distances), then what `knn.run` does with them --
the votes (`label_crops`), the neighbours' dataset rows, the table written
(`write_table`) -- and its peak RSS (`getrusage`). The slope between the two sizes is the
bytes per neighbour, the search's own distances and ids included:

    python bench/knn_memory.py                 # 60,000 and 600,000 crops: about 2 min
    python bench/knn_memory.py --crops 20000 200000 --k 50
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys
import numpy as np, pandas as pd
sys.path.insert(0, {repo!r})
from dejavu.attack.knn import label_crops, write_table
crops, k, public, classes = {crops}, {k}, 631_000, {classes}
rng = np.random.default_rng(0)
ids = rng.integers(0, public, size=(crops, k))
dist = np.sort(rng.random((crops, k), dtype=np.float32), axis=1)
labels = rng.integers(0, classes, size=public)
public_rows = np.arange(public, dtype=np.int64)
voted = label_crops(dist, ids, labels, classes)   # as knn.run: the votes, then the rows
neighbors = public_rows[ids]
del ids
table = pd.DataFrame({{"crop_row": np.arange(crops), "prediction": voted["prediction"],
                      "confidence": voted["confidence"]}})
write_table(table, {out!r}, neighbors=neighbors, distances=dist, top5=voted["top5"],
            voted=(voted["voted"], voted["offsets"]), votes=(voted["votes"], voted["offsets"]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_mb(crops: int, k: int, classes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        code = CHILD.format(repo=str(REPO), crops=crops, k=k, classes=classes,
                            out=str(Path(tmp) / "knn.parquet"))
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=int, nargs=2, default=[60_000, 600_000])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args()
    small, large = args.crops
    peaks = {n: peak_mb(n, args.k, args.classes) for n in (small, large)}
    for n, peak in peaks.items():
        print(f"{n:9,d} crops x k {args.k}: peak {peak:,.0f} MB")
    slope = (peaks[large] - peaks[small]) * 2**20 / ((large - small) * args.k)
    print(f"{slope:.1f} bytes per neighbour ({args.classes} classes)")


if __name__ == "__main__":
    main()
