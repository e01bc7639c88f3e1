"""Does the vision-language test's memory follow its batch, chunk and query-block settings,
and what would a 40-million-record run ask a cluster for?

Measured: the VLM DAG (tests/vlm_tiny.yaml's small model, one epoch) on the synthetic
captioned benchmark at 64 px, N and 4N records, with small blocks (`vlm.embed.chunk_rows` 1,024,
`vlm.query_rows` 512) so that N spans many of them. Per rule: peak RSS (Snakemake's
benchmark files) at both sizes beside the growth its named terms allow (dejavu/vlm/
resources.py: the records table, the token ids, the public objects, the per-record
scores) plus 64 MB of noise -- far below the growth of the records' pixels, which a stage
holding its images or embeddings whole would show -- and every job's peak against the
memory it declared.

Projected: the formulas of dejavu/vlm/resources.py at 40 million records (A, B and
held-out 10 million each, 10 million public, COCO's 80 object names), a ResNet-50 image
tower at 224 px with a 512-d projector, the text tower at context 32, width 512, depth 12,
32 epochs, on one GPU per job: each stage's jobs, memory, minutes and GPU-hours.

    python bench/vlm_scale.py                # N = 4,000: about 10 minutes on 2 cores
    python bench/vlm_scale.py --records 2000 --keep runs/vlm_scale --check
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml
import rehearsal
from scratch import REPO, copy_workflow, snakemake

sys.path.insert(0, str(REPO))

from dejavu.vlm import resources as res  # noqa: E402

MB = 2**20
NOISE_MB = 64
SIDE = 64  # px: the 4N records' pixels (196 MB at N = 4,000) dwarf the noise


def overlay(records: int) -> dict:
    return {"vlm": {"data": {"records": records, "image_size": SIDE}, "per_set": records // 5,
                    "train": {"epochs": 1}, "embed": {"chunk_rows": 1024},
                    "query_rows": 512, "ks": [1, 10, 100], "bootstrap": 20}}


def run(records: int, work: Path) -> pd.DataFrame:
    copy_workflow(work)
    for name in ("tiny.yaml", "vlm_tiny.yaml"):
        shutil.copy(REPO / "tests" / name, work / name)
    (work / "scale.yaml").write_text(yaml.safe_dump(overlay(records)))
    snakemake(work, "-c2", "--configfile", "tiny.yaml", "vlm_tiny.yaml", "scale.yaml", "--",
              "results/vlm_summary.csv")
    return rehearsal.jobs(work)


def allowed_growth(rule: str, n: int) -> float:
    """MB the named terms of `rule` grow by from n to 4n records (per_set n/5, public 2n/5,
    24 object names, 9 (k, mode) keys, context 16): what the stage holds per record by
    design (dejavu/vlm/resources.py)."""
    grow, held = 3 * n, res.record_bytes(24)  # records added; vlm.data.Records
    terms = {"vlm_data": 2 * SIDE * SIDE * 3 + res.SOURCE_RECORD_BYTES,  # drawn whole
             "vlm_train": held + 2 * 8 * 16 / 5 + SIDE * SIDE * 3 / 5,  # set cached (<1 GB)
             "vlm_embed": held,
             "vlm_test": held + 24 * 2 / 5 + 2 / 5 * (24 + 2 * 12 * 9)}
    return grow * terms.get(rule, held) / MB


def pixels(n: int) -> float:
    """MB of the images of n records: what a stage holding them whole would add."""
    return n * SIDE * SIDE * 3 / MB


def measured(n: int, small: pd.DataFrame, large: pd.DataFrame) -> bool:
    print(f"synthetic captioned benchmark, {n} vs {4 * n} records ({SIDE} px, tiny model, "
          f"1 epoch); their pixels grow by {pixels(4 * n) - pixels(n):.0f} MB")
    print(f"{'rule':12s} {'peak N':>7s} {'peak 4N':>8s} {'growth':>7s} {'allowed':>8s} "
          f"{'wall N':>7s} {'wall 4N':>8s}  verdict")
    ok = True
    for rule in sorted(set(small["rule"]) & set(large["rule"])):
        a, b = (t[t["rule"] == rule] for t in (small, large))
        growth = b["peak_mb"].max() - a["peak_mb"].max()
        limit = allowed_growth(rule, n) + NOISE_MB
        verdict = "ok" if growth <= limit else "OVER"
        ok &= verdict == "ok"
        print(f"{rule:12s} {a['peak_mb'].max():7.0f} {b['peak_mb'].max():8.0f} {growth:+7.0f} "
              f"{limit:8.0f} {60 * a['wall_min'].max():6.1f}s {60 * b['wall_min'].max():7.1f}s"
              f"  {verdict}")
    both = pd.concat([small, large])
    over = both[both["peak_mb"] >= both["declared_mb"]]
    print(f"{len(both)} jobs; peak RSS below declared mem_mb in {len(both) - len(over)}, "
          f"closest {(both['peak_mb'] / both['declared_mb']).max():.2f} of it")
    for _, job in over.iterrows():
        print(f"  over: {job['job']} peak {job['peak_mb']:.0f} MB, declared {job['declared_mb']}")
    return ok and over.empty


def record_footprint(n: int = 200_000, vocabulary: int = 80) -> float:
    """Bytes a record costs `vlm.data.Records` (RSS growth on reading a store of n records
    with 56-character captions of 11 words and 1-7 of `vocabulary` objects, one named)."""
    import gc
    import os

    import numpy as np

    from dejavu.data.sources import Rejects
    from dejavu.vlm import data
    rng = np.random.default_rng(0)
    words = np.array("a dog on the grass near traffic light with two cats sitting table red "
                     "kitchen".split())
    objects = [np.sort(rng.choice(vocabulary, rng.integers(1, 8), replace=False)).tolist()
               for _ in range(n)]
    table = pd.DataFrame({"id": np.arange(n).astype(str),
                          "caption": [" ".join(rng.choice(words, 11)) for _ in range(n)],
                          "objects": objects, "named": [o[:1] for o in objects]})
    with tempfile.TemporaryDirectory() as folder:
        data.write_store(folder, np.zeros((n, 2, 2, 3), np.uint8), table,
                         [f"o{i}" for i in range(vocabulary)], Rejects("vlm_data").table())
        del table, objects
        gc.collect()
        def rss() -> int:  # resident bytes of this process
            return int(open(f"/proc/{os.getpid()}/statm").read().split()[1]) * 4096
        before = rss()
        records = data.Records(folder)
        grown = (rss() - before) / n
        del records
    return grown


SCAN = """
import resource, sys
from dejavu.data.sources import Rejects
from dejavu.vlm import records
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
vocabulary, first, lines = records._scan_jsonl(sys.argv[1], Rejects("vlm_data"))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - before) * 1024 / len(lines))
"""


def jsonl_footprint(n: int = 2_000_000) -> float:
    """Peak bytes a line costs the first pass over a JSON-lines file (`records.jsonl_chunks`:
    the vocabulary, duplicates and bad lines), in a fresh process: n lines of about 100
    bytes, one in a thousand a duplicate image."""
    import subprocess
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.jsonl"
        with open(path, "w") as f:
            for i in range(n):
                image = i - 1 if i % 1000 == 999 else i
                f.write(f'{{"image": "img/{image:08d}.jpg", "caption": "a dog on the grass '
                        f'near a red kitchen table", "objects": ["dog", "o{i % 80}"]}}\n')
        done = subprocess.run([sys.executable, "-c", SCAN, str(path)], capture_output=True,
                              text=True, check=True, cwd=REPO)
    return float(done.stdout.split()[-1])


PAPER = {"n_records": 40_000_000, "per_set": 10_000_000, "n_public": 10_000_000,
         "vocabulary": 80, "side": 224, "backbone": "resnet50", "width": 64,
         "projector": [2048, 512], "epochs": 32, "batch_size": 1024, "gpus": 1,
         "text": {"context": 32, "buckets": 2**15, "text_dim": 512, "text_depth": 12}}


def projection(p: dict = PAPER) -> pd.DataFrame:
    """Per stage: jobs, mem_mb, minutes per job and GPU-hours, at the paper's scale."""
    model = {k: p[k] for k in ("side", "backbone", "width", "projector", "text")}
    dim = p["projector"][-1]
    rows = [
        ("vlm_data (coco)", 1, res.data_mb(source="coco", side=p["side"], chunk_rows=256,
                                           n_records=p["n_records"],
                                           annotation_bytes=200 * p["n_records"]),
         res.data_min(source="coco", n_images=p["n_records"], side=p["side"])),
        ("vlm_data (jsonl)", 1, res.data_mb(source="jsonl", side=p["side"], chunk_rows=256,
                                            lines=p["n_records"]),
         res.data_min(source="jsonl", n_images=p["n_records"], side=p["side"])),
        ("vlm_train", 2, res.train_mb(n_records=p["n_records"], vocabulary=p["vocabulary"],
                                      n_set=p["per_set"],
                                      batch_size=p["batch_size"], on_cpu=False, **model),
         res.train_min(epochs=p["epochs"], n_set=p["per_set"], gpus=p["gpus"], **model)),
        ("vlm_embed", 4, res.embed_mb(n_records=p["n_records"], vocabulary=p["vocabulary"],
                                      side=p["side"],
                                      batch_size=256, chunk_rows=65_536, dims=2 * dim),
         res.embed_min(n_records=p["n_records"], gpus=p["gpus"], **model)),
        ("vlm_test", 2, res.test_mb(n_records=p["n_records"], n_public=p["n_public"],
                                    n_scored=2 * p["per_set"], vocabulary=p["vocabulary"],
                                    dim=dim, k=100, keys=9, query_rows=65_536, search_mb=4096),
         res.test_min(n_public=p["n_public"], n_scored=4 * p["per_set"], dim=dim,
                      searches=2, gpus=p["gpus"])),
    ]
    table = pd.DataFrame(rows, columns=["stage", "jobs", "mem_mb", "minutes"])
    table["gpu_hours"] = (table["jobs"] * table["minutes"].fillna(0) / 60 * p["gpus"]).round()
    table.loc[table["stage"].str.startswith("vlm_data"), "gpu_hours"] = 0
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=4000, help="N, records")
    parser.add_argument("--keep", type=Path, help="run here and keep it")
    parser.add_argument("--check", action="store_true", help="exit 1 if a check fails")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        small, large = (run(n, root / f"n{n}") for n in (args.records, 4 * args.records))
        ok = measured(args.records, small, large)
    print(f"\nvlm.data.Records: {record_footprint():.0f} bytes a record (200,000 records, 80 "
          f"object names; formula {res.record_bytes(80)})")
    print(f"JSON-lines first pass: {jsonl_footprint():.0f} bytes a line at its peak (2,000,000 "
          f"lines; formula {res.JSONL_BYTES_PER_LINE})")
    print("\nprojected, 40M records (dejavu/vlm/resources.py; one GPU per job):")
    print(projection().to_string(index=False))
    if args.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
