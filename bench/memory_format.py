"""What running CPU models in the default memory format costs, against channels-last.

dejavu runs every model on a CPU in the default (contiguous) memory format: channels-last
training steps crashed or gave wrong gradients on CPUs at real shapes
(`tests/test_memory_format.py`, docs/methods.md). This prints, per model the demo trains or
evaluates, milliseconds per step in both formats, measured in turn in one process (rounds
alternate the formats so that drift in the machine's speed hits both), and the ratio
default / channels-last: the price of the choice. Each model runs in its own process, so a
crash in channels-last is reported as such and the others still run.

    python bench/memory_format.py [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# name: (what the demo does with it, batch, side)
MODELS = {
    "convnet-w16 training step": ("ssl-train", 256, 32),       # two views of 128
    "convnet-w16 embedding": ("ssl-embed", 512, 32),
    "correlation-resnet18-w16 training step": ("correlation", 128, 32),
    "decoder-w32 training step": ("decoder", 64, 16),
}


def build(kind: str, side: int):
    import torch
    torch.manual_seed(0)
    if kind.startswith("ssl"):
        from dejavu.core.models import SSLModel
        return SSLModel("convnet", projector_dims=[512, 512, 512], width=16, small_stem=True,
                        image_size=side, patch_size=4)
    if kind == "correlation":
        from dejavu.onemodel.correlation import ResNetClassifier
        return ResNetClassifier(10, depth=18, width=16)
    from dejavu.rcdm import Decoder, DecoderConfig
    return Decoder(512, DecoderConfig(resolution=side, width=32, channel_mult=(1, 2)))


def step_seconds(name: str, rounds: int, threads: int) -> dict[str, list[float]]:
    """Seconds per step of model `name` in each format, `rounds` alternating rounds."""
    import torch
    torch.set_num_threads(threads)
    kind, batch, side = MODELS[name]
    formats = {"default": torch.contiguous_format, "channels_last": torch.channels_last}
    models = {fmt: build(kind, side).to(memory_format=f) for fmt, f in formats.items()}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, side, side, generator=g)
    t = torch.randint(1000, (batch,), generator=g)
    cond = torch.randn(batch, 512, generator=g)

    def step(fmt: str) -> None:
        model, xx = models[fmt], x.contiguous(memory_format=formats[fmt])
        if kind == "ssl-embed":
            with torch.inference_mode():
                model.eval()(xx)
            return
        model.train().zero_grad()
        out = model(xx * 2 - 1, t, cond) if kind == "decoder" else model(xx)
        outs = out if isinstance(out, tuple) else (out,)
        sum(o.square().mean() for o in outs).backward()

    times: dict[str, list[float]] = {fmt: [] for fmt in formats}
    for fmt in formats:
        step(fmt)  # warm-up: kernels chosen, memory allocated
    for _ in range(rounds):
        for fmt in formats:
            start = time.perf_counter()
            for _ in range(3):
                step(fmt)
            times[fmt].append((time.perf_counter() - start) / 3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", choices=sorted(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(step_seconds(args.one, args.rounds, args.threads)))
        return
    print(f"{'model':42s} {'default ms':>11s} {'channels-last ms':>17s} {'ratio':>6s}")
    for name in MODELS:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", name,
                               "--rounds", str(args.rounds), "--threads", str(args.threads)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(f"{name:42s} failed (exit status {proc.returncode}): "
                  f"{proc.stderr.strip().splitlines()[-1:]}")
            continue
        times = json.loads(proc.stdout.splitlines()[-1])
        d, c = (1000 * statistics.median(times[f]) for f in ("default", "channels_last"))
        print(f"{name:42s} {d:11.0f} {c:17.0f} {d / c:6.2f}")
    print("ratio: default / channels-last time per step (median of the rounds); "
          "above 1, the default format is slower")


if __name__ == "__main__":
    main()
