"""RCDM decoder throughput at the demo's settings, beside the bare UNet in the same process.

Four figures, images/s:
- train: `dejavu.rcdm.train_decoder` (batch gather, noising, the conditioned UNet, loss,
  AdamW, EMA update, bookkeeping) on synthetic images and random embeddings;
- train, bare: forward + backward + AdamW of the same UNet (UNet2DModel only, no
  conditioning map, no noising or EMA) on tensors already in place;
- sample: `dejavu.rcdm.sample` (seeded noise per image, `--sample-steps` DDIM steps, EMA
  weights), counted per finished image;
- sample, bare: `--sample-steps` plain forward passes of the same UNet per image.
The ratios bare / ours are the cost of what the stage adds around the network. The device
is picked at run time (bf16 autocast on CUDA).

    python bench/decoder_throughput.py [--steps 60] [--batch 64] [--sample-steps 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import yaml

from dejavu import rcdm
from dejavu.core.models import memory_format, pick_device


def demo_config(device: str) -> rcdm.DecoderConfig:
    """The decoder settings of config.yaml (the demo)."""
    with open("config.yaml") as f:
        options = yaml.safe_load(f)["rcdm"]
    fields = {f.name for f in dataclasses.fields(rcdm.DecoderConfig)}
    options = {k: v for k, v in options.items() if k in fields}
    return rcdm.options_config({**options, "device": device})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_train(cfg: rcdm.DecoderConfig, cond_dim: int, steps: int,
               device: torch.device) -> float:
    torch.manual_seed(0)
    unet = rcdm.Decoder(cond_dim, cfg).unet.to(device, memory_format=memory_format(device))
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr)
    r, b = cfg.resolution, cfg.batch_size
    x = torch.randn(b, 3, r, r, device=device).contiguous(memory_format=memory_format(device))
    emb = torch.randn(b, 4 * cfg.channels[0], device=device)
    t = torch.randint(cfg.timesteps, (b,), device=device)
    for i in range(steps + 3):
        if i == 3:  # warmed up
            sync(device)
            start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            out = unet(x, t, class_labels=emb).sample
        loss = (out.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return steps * b / (time.perf_counter() - start)


@torch.no_grad()
def bare_sample(decoder: rcdm.Decoder, cfg: rcdm.DecoderConfig, n: int, steps: int,
                device: torch.device) -> float:
    unet = decoder.unet.to(device).eval()
    r = cfg.resolution
    x = torch.randn(n, 3, r, r, device=device)
    emb = torch.randn(n, 4 * cfg.channels[0], device=device)
    sync(device)
    start = time.perf_counter()
    for t in range(steps):
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            unet(x, torch.full((n,), 999 - t, device=device), class_labels=emb)
    sync(device)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps timed")
    parser.add_argument("--batch", type=int, default=None, help="default: the demo's")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--cond-dim", type=int, default=640, help="demo: 128 + 512")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cfg = demo_config(args.device)
    if args.batch:
        cfg = dataclasses.replace(cfg, batch_size=args.batch)
    rng = np.random.default_rng(0)
    r = cfg.resolution
    images = rng.integers(0, 256, (args.images, r, r, 3), dtype=np.uint8)
    cond = rng.normal(size=(args.images, args.cond_dim)).astype(np.float32)
    print(f"device {device}, threads {torch.get_num_threads()}, {r}x{r}, width {cfg.width}, "
          f"levels {cfg.channel_mult}, batch {cfg.batch_size}, conditioning {args.cond_dim}")

    rcdm.train_decoder(images, cond, dataclasses.replace(cfg, steps=3))  # warm-up
    sync(device)
    start = time.perf_counter()
    decoder, _ = rcdm.train_decoder(images, cond, dataclasses.replace(cfg, steps=args.steps))
    sync(device)
    ours_train = args.steps * cfg.batch_size / (time.perf_counter() - start)
    plain_train = bare_train(cfg, args.cond_dim, args.steps, device)

    seeds = list(range(args.samples))
    rcdm.sample(decoder, cfg, cond[:4], seeds[:4], steps=2, device=device)  # warm-up
    sync(device)
    start = time.perf_counter()
    rcdm.sample(decoder, cfg, cond[:args.samples], seeds, steps=args.sample_steps,
                device=device)
    sync(device)
    ours_sample = args.samples / (time.perf_counter() - start)
    plain_sample = bare_sample(decoder, cfg, args.samples, args.sample_steps, device)

    print(f"train   {ours_train:8.1f} img/s   bare UNet fwd+bwd {plain_train:8.1f} img/s   "
          f"ratio {plain_train / ours_train:.2f}")
    print(f"sample  {ours_sample:8.2f} img/s   bare UNet {args.sample_steps} fwd "
          f"{plain_sample:8.2f} img/s   ratio {plain_sample / ours_sample:.2f}")


if __name__ == "__main__":
    main()
