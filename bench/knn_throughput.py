"""k-NN throughput: queries/s for k = 100 per backend, beside the machine's matmul rate.

For each (|X|, d), random float32 data: the FAISS flat index (faiss-gpu if present) and
the chunked torch backend search `--queries` queries. Exact search costs 2·|X|·d FLOPs per
query; the fraction of the matmul FLOP rate this process reaches (a large fp32 matmul on
CPU, fp16 on CUDA) says how close each backend gets to the hardware limit.

    python bench/knn_throughput.py [--queries 2000] [--sizes 10000x128,100000x2048]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dejavu.attack.index import build_index
from dejavu.attack.knn import search, torch_search
from dejavu.core.models import pick_device


def matmul_flops(device: torch.device, n: int = 2048, repeat: int = 5) -> float:
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeat / (time.perf_counter() - start)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--sizes", default="10000x128,50000x512,100000x2048")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--memory-mb", type=int, default=None)
    args = parser.parse_args()
    device = pick_device(args.device)
    peak = matmul_flops(device)
    print(f"{device.type}, {torch.get_num_threads()} threads; matmul "
          f"{'fp16' if device.type == 'cuda' else 'fp32'} {peak / 1e9:.0f} GFLOP/s")
    print(f"{'|X| x d':>14}{'backend':>9}{'queries/s':>12}{'GFLOP/s':>10}{'of matmul':>11}")
    rng = np.random.default_rng(0)
    for size in args.sizes.split(","):
        n, d = (int(v) for v in size.split("x"))
        db = rng.standard_normal((n, d), dtype=np.float32)
        q = rng.standard_normal((args.queries, d), dtype=np.float32)
        index = build_index(db)
        for backend, run in (
                ("faiss", lambda: search(index, q, args.k, device=args.device)),
                ("torch", lambda: torch_search([(0, db)], n, q, args.k,
                                               device=args.device,
                                               memory_mb=args.memory_mb))):
            run()  # warm-up (and GPU transfer of the index)
            seconds = timed(run)
            flops = 2 * n * d * args.queries / seconds
            print(f"{size:>14}{backend:>9}{args.queries / seconds:12.0f}"
                  f"{flops / 1e9:10.1f}{flops / peak:11.2f}")


if __name__ == "__main__":
    main()
