"""GPU acceptance: every CUDA path of dejavu against its CPU result, in one table.

    python bench/gpu_check.py                # on a machine with a GPU: about 2 minutes
    python bench/gpu_check.py --device cpu   # the same checks with the CPU on both sides

Each check runs the same computation on the device and on the CPU (float32) and compares:
a bf16 training step of each method (loss within the tolerance `tests/test_methods.py`
states), data-parallel training over the GPUs present (two processes must equal one),
embeddings in bf16 against float32 (the same k nearest neighbours for nearly every crop),
both k-NN backends against a float64 brute force (exactly), a decoder training step and
SSLMem's view distances. Then the throughput benchmarks run on the device. On a machine
without a usable GPU it prints why and exits 0; `--device cpu` exercises every check's
logic there (`tests/test_gpu_check.py` does).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
METHODS = ("vicreg", "simclr", "barlow_twins", "byol", "dino", "supervised")
STEP_TOLERANCE = {"dino": 0.05}  # relative loss difference bf16 vs float32; 0.01 otherwise


def small_model(width: int = 8, projector=(64, 64)):
    from dejavu.training.train import init_model
    return init_model("convnet", list(projector), width, 0)


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def training_step(device: str) -> list[dict]:
    """One loss of each method on the device under bf16 autocast against float32 on CPU."""
    from dejavu.training.methods import Progress, get
    rows = []
    for name in METHODS:
        torch.manual_seed(0)
        views = [torch.rand(16, 3, 16, 16) for _ in range(2)]
        labels = torch.arange(16) % 3
        progress = Progress(0, 10, 1, 1)
        cpu = get(name)(small_model(), classes=3)
        expected = cpu(views, labels, progress).item()
        torch.manual_seed(0)
        on = get(name)(small_model(), classes=3).to(device)
        with torch.autocast(torch.device(device).type, torch.bfloat16):
            got = on([v.to(device) for v in views], labels.to(device), progress).item()
        tolerance = STEP_TOLERANCE.get(name, 0.01)
        rows.append(row(f"train step {name} (bf16)", relative(got, expected) <= tolerance,
                        f"loss {got:.4f} vs {expected:.4f}, tolerance {tolerance:.0%}"))
    return rows


def data_parallel(device: str, workdir: str = "/tmp") -> list[dict]:
    """Two data-parallel processes with half the batch each reach one process's weights."""
    import tempfile

    from dejavu.core.models import load_checkpoint
    from dejavu.training.train import SaveTo, TrainConfig, train, train_processes
    cuda = device.startswith("cuda")
    if cuda and torch.cuda.device_count() < 2:
        return [row("data-parallel training", None,
                    f"{torch.cuda.device_count()} GPU: needs 2")]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    # SGD, as tests/test_train.py: its update is proportional to the gradient, so rounding
    # stays rounding (Adam turns noise in gradient-free parameters into steps of size lr)
    cfg = TrainConfig(method="vicreg", epochs=2, batch_size=16, warmup_epochs=1,
                      optimizer="sgd", lr=0.05, device="cuda" if cuda else "cpu")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        one, two = f"{tmp}/one.pt", f"{tmp}/two.pt"
        train(small_model(), images, cfg, SaveTo({2: one}))
        train_processes(2, small_model(), images, cfg, SaveTo({2: two}), threads=2)
        a, b = (load_checkpoint(p)[0].state_dict() for p in (one, two))
    start = small_model().state_dict()
    moved = max((a[k].double() - start[k].double()).abs().max().item() for k in a)
    apart = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    return [row("data-parallel training (2 processes)", moved > 1e-2 and apart < 1e-3 * moved,
                f"weights moved {moved:.1e}, the two runs {apart:.1e} apart")]


def embed_precision(device: str) -> list[dict]:
    """Embeddings on the device (bf16 autocast on CUDA) against float32 on CPU: the same
    nearest public neighbours for nearly every query."""
    from dejavu.attack.embed import embed_batches
    from dejavu.attack.knn import search
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (600, 16, 16, 3), dtype=np.uint8)
    model = small_model().eval()
    rows = np.arange(len(images))
    out = {}
    for name, dev in (("cpu", "cpu"), ("device", device)):
        blocks = list(embed_batches(model, images, rows, 16, 128, torch.device(dev)))
        out[name] = np.concatenate([b["projector"] for b in blocks])
    public, queries = slice(0, 500), slice(500, 600)
    same = np.mean([set(a) == set(b) for a, b in zip(
        search(out["cpu"][public], out["cpu"][queries], 5)[1],
        search(out["device"][public], out["device"][queries], 5)[1])])
    return [row("embed (bf16 on CUDA) vs float32", same >= 0.9,
                f"{same:.0%} of queries keep their 5 neighbours")]


def knn_backends(device: str) -> list[dict]:
    """Both backends on the device against a float64 brute force, exactly."""
    from dejavu.attack.knn import search, torch_search
    rng = np.random.default_rng(0)
    public = rng.normal(5.0, 1.0, (4000, 512)).astype(np.float32)
    queries = public[:100] + rng.normal(0, 0.05, (100, 512)).astype(np.float32)
    q, x = queries.astype(np.float64), public.astype(np.float64)
    # |q|^2 + |x|^2 - 2 q.x in float64: its rounding (~1e-12 of |q|^2 = 13,000) is far below
    # the gap between a query's neighbours (~1), and it needs no (100, 4000, 512) difference
    exact = (q ** 2).sum(1)[:, None] + (x ** 2).sum(1)[None] - 2 * q @ x.T
    expected = np.argsort(exact, axis=1, kind="stable")[:, :10]
    found = {"torch": torch_search([(0, public)], len(public), queries, 10, device=device)[1],
             "faiss": search(public, queries, 10, device=device)[1]}
    return [row(f"k-NN {name} vs float64", bool((ids[:, 0] == expected[:, 0]).all()
                                                 and np.mean(ids == expected) >= 0.99),
                f"{np.mean(ids == expected):.1%} of neighbours equal")
            for name, ids in found.items()]


def decoder_step(device: str) -> list[dict]:
    """A few decoder training steps on the device against the CPU: the same loss curve."""
    import dataclasses

    from dejavu.rcdm import DecoderConfig, train_decoder
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    cond = rng.normal(size=(64, 16)).astype(np.float32)
    cfg = DecoderConfig(resolution=8, width=8, channel_mult=(1,), steps=5, batch_size=8,
                        warmup_steps=1, device="cpu")
    _, cpu = train_decoder(images, cond, cfg)
    _, on = train_decoder(images, cond, dataclasses.replace(cfg, device=device))
    gap = max(relative(a, b) for a, b in zip(on, cpu))
    return [row("decoder training (bf16 on CUDA)", gap < 0.05,
                f"largest loss difference {gap:.1%}")]


def sslmem_distances(device: str) -> list[dict]:
    from dejavu.onemodel.sslmem import view_distances
    from dejavu.training.augment import ViewAugment
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    view = ViewAugment()
    cpu = view_distances(small_model(), images, view, 3, 0, device="cpu")
    on = view_distances(small_model(), images, view, 3, 0, device=device)
    gap = float(np.abs(on - cpu).max())
    return [row("SSLMem view distances", gap < 2e-2, f"largest difference {gap:.1e}")]


def throughput(device: str) -> list[dict]:
    """The throughput benchmarks on the device, their last lines."""
    rows = []
    for script, args in (("train_throughput.py", ["--epochs", "1"]),  # CUDA when present
                         ("embed_throughput.py", ["--images", "4096", "--device", device]),
                         ("knn_throughput.py", ["--queries", "500", "--sizes",
                                                "100000x2048", "--device", device])):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(REPO / "bench" / script), *args],
                              capture_output=True, text=True)
        last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        rows.append(row(f"bench/{script}", proc.returncode == 0,
                        f"{time.perf_counter() - start:.0f} s; {last[:70]}"))
    return rows


CHECKS = (training_step, data_parallel, embed_precision, knn_backends, decoder_step,
          sslmem_distances, throughput)


def row(check: str, ok: bool | None, detail: str) -> dict:
    return {"check": check, "result": {True: "ok", False: "FAIL", None: "skipped"}[ok],
            "detail": detail}


def table(rows: list[dict]) -> str:
    width = max(len(r["check"]) for r in rows)
    return "\n".join(f"{r['check']:<{width}}  {r['result']:<7}  {r['detail']}" for r in rows)


def run(device: str, checks=CHECKS) -> list[dict]:
    rows = []
    for check in checks:
        try:
            rows += check(device)
        except Exception as err:  # one broken path must not hide the others
            rows.append(row(check.__name__, False, f"{type(err).__name__}: {err}"[:160]))
    return rows


def main(argv=None) -> int:
    from dejavu.core.models import cuda_problem
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        problem = cuda_problem()
        if problem:
            print(f"no usable GPU here ({problem}); nothing to check")
            return 0
    checks = tuple(c for c in CHECKS if not (args.skip_throughput and c is throughput))
    rows = run(args.device, checks)
    print(table(rows))
    return 1 if any(r["result"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
