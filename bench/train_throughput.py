"""Training throughput of each method beside a plain reference loop.

For every method: images/s of `dejavu.training.train.train` (the method's views made per image on the
device with its full augmentation recipe — crop, flip, colour jitter, grayscale, blur,
solarize — the loss, the optimizer step, momentum-teacher updates and bookkeeping) on the
synthetic benchmark, and of a plain loop over the same model and batches (un-augmented
views, the method's loss, the same optimizer, eager) in the same process. The ratio
reference / train is the cost of augmentation and bookkeeping. `--recipe demo` uses the
demo config's crop-and-flip augmentation instead. Runs unchanged on a GPU (the device is
picked at run time; bf16 autocast there).

    python bench/train_throughput.py [--images 500] [--batch 128] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dejavu.training import methods
from dejavu.core.models import memory_format, pick_device
from dejavu.data.synth import SynthConfig, generate
from dejavu.training.train import TrainConfig, init_model, train

DEMO_AUGMENT = {"jitter_prob": 0.0, "grayscale_prob": 0.0, "blur_prob": [0.0, 0.0],
                "solarize_prob": [0.0, 0.0]}


def reference_loop(name: str, images: np.ndarray, labels: np.ndarray, batch: int,
                   epochs: int, device: torch.device) -> float:
    """images/s of the bare step: the method's loss on un-augmented views, AdamW, eager."""
    torch.manual_seed(0)
    method = methods.get(name)(init_model("convnet", [512, 512, 512], 16, 0), classes=10)
    method.to(device, memory_format=memory_format(device)).train()
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)
    y_all = torch.tensor(labels, dtype=torch.long, device=device)
    steps = epochs * -(-len(images) // batch)
    step = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for x, y in zip(x_all.split(batch), y_all.split(batch)):
            x = x.contiguous(memory_format=memory_format(device))
            progress = methods.Progress(step, steps, epoch, epochs)
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                loss = method([x, x], y, progress)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            method.after_step(progress)
            step += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return epochs * len(images) / (time.perf_counter() - start)


def ours(name: str, images: np.ndarray, labels: np.ndarray, batch: int, epochs: int,
         augment: dict) -> float:
    cfg = dict(method=name, batch_size=batch, classes=10, augment=augment)
    model = init_model("convnet", [512, 512, 512], 16, 0)
    train(model, images[:batch * 2], TrainConfig(epochs=1, **cfg), lambda *saved: None,
          labels=labels[:batch * 2])  # warm-up
    start = time.perf_counter()
    train(model, images, TrainConfig(epochs=epochs, **cfg), lambda *saved: None, labels=labels)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return epochs * len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--recipe", choices=["method", "demo"], default="method")
    parser.add_argument("--methods", nargs="*", default=methods.names())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device("auto")
    images, index = generate(SynthConfig(images_per_class=args.images // 10))
    labels = index["label"].to_numpy()
    augment = DEMO_AUGMENT if args.recipe == "demo" else {}
    print(f"device {device}, threads {args.threads}, {len(images)} images 32x32, "
          f"batch {args.batch}, {args.epochs} epochs, augmentation: {args.recipe} recipe")
    print(f"{'method':14s} {'train img/s':>12s} {'reference img/s':>16s} {'ratio':>6s}")
    for name in args.methods:
        mine = ours(name, images, labels, args.batch, args.epochs, augment)
        reference = reference_loop(name, images, labels, args.batch, args.epochs, device)
        print(f"{name:14s} {mine:12.0f} {reference:16.0f} {reference / mine:6.2f}", flush=True)


if __name__ == "__main__":
    main()
