"""Training throughput of each SSL method beside a plain reference loop.

For every method: images/s of `dejavu.train.train` (per-image augmentation on the device,
two views, loss, AdamW, bookkeeping) on the synthetic benchmark, and of a plain loop with
the same model and batch (two un-augmented views, same loss, AdamW, eager) run in the same
process. The ratio reference / train is the cost of augmentation and bookkeeping.
Runs unchanged on a GPU (the device is picked at run time).

    python bench/train_throughput.py [--images 500] [--batch 128] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from dejavu.methods import METHODS
from dejavu.models import pick_device
from dejavu.synth import SynthConfig, generate
from dejavu.train import TrainConfig, init_model, train


def reference_loop(model, data: torch.Tensor, loss_fn, batch: int, epochs: int) -> float:
    """images/s of the bare training step: no augmentation, no schedule, no logging."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    x_all = data.float() / 255
    start = time.perf_counter()
    for _ in range(epochs):
        for x in x_all.split(batch):
            x = x.contiguous(memory_format=torch.channels_last)
            _, z_a = model(x)
            _, z_b = model(x)
            loss = loss_fn(z_a, z_b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if data.device.type == "cuda":
        torch.cuda.synchronize()
    return epochs * len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device("auto")
    images, _ = generate(SynthConfig(images_per_class=args.images // 10))
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    print(f"device {device}, threads {args.threads}, {len(images)} images 32x32, "
          f"batch {args.batch}, {args.epochs} epochs")
    print(f"{'method':14s} {'train img/s':>12s} {'reference img/s':>16s} {'ratio':>6s}")
    for name, loss_fn in METHODS.items():
        model = init_model("convnet", [512, 512, 512], 16, 0).to(device,
                                                                 memory_format=torch.channels_last)
        train(model, images[:args.batch * 2], TrainConfig(method=name, epochs=1,
                                                          batch_size=args.batch), lambda e, m: None)
        start = time.perf_counter()
        train(model, images, TrainConfig(method=name, epochs=args.epochs,
                                         batch_size=args.batch), lambda e, m: None)
        ours = args.epochs * len(images) / (time.perf_counter() - start)
        reference = reference_loop(model, data, loss_fn, args.batch, args.epochs)
        print(f"{name:14s} {ours:12.0f} {reference:16.0f} {reference / ours:6.2f}")


if __name__ == "__main__":
    main()
