"""SSL training of one model on one training set, with checkpoints at chosen epochs.

The data set is small enough to sit in memory as uint8 once; each step draws a batch,
augments it twice on the device (`augment.py`) and takes one AdamW step with a warm-up +
cosine learning rate. With a fixed seed on CPU, training is reproducible bit for bit.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .augment import AugmentConfig, random_resized_crop_flip
from .methods import METHODS
from .models import SSLModel, load_checkpoint, pick_device, save_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    method: str = "vicreg"
    epochs: int = 200
    checkpoints: tuple[int, ...] = ()   # epochs to save besides the last
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    loss: dict = field(default_factory=dict)   # keyword arguments of the method's loss
    augment: AugmentConfig = AugmentConfig()
    seed: int = 0
    device: str = "auto"
    resume_every: int = 10              # epochs between resume states (when resuming is on)


def run_seed(seed: int, subset: str) -> int:
    """Seed of one model: models A and B of a seed must differ, also when untrained."""
    return zlib.crc32(f"{seed}/{subset}".encode())


def init_model(backbone: str, projector_dims: list[int], width: int, seed: int,
               small_stem: bool = True) -> SSLModel:
    torch.manual_seed(seed)
    return SSLModel(backbone, projector_dims, width, small_stem)


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to base_lr, then cosine decay to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * t))


def fingerprint(model: SSLModel, images: np.ndarray, cfg: TrainConfig) -> str:
    """Identifies a training run: settings, data and starting weights."""
    h = hashlib.sha256(repr(cfg).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    for tensor in model.state_dict().values():
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


class Resume:
    """Training state kept beside the outputs so a killed job continues where it stopped.

    `<dir>/state.pt` holds model, optimizer, random generator, epoch and loss history;
    `<dir>/epoch<e>.pt` the checkpoints already passed (the workflow deletes a failed job's
    outputs, so they are re-emitted on resume). States of another run (other settings, data
    or starting weights) are ignored.
    """

    def __init__(self, directory: str, run_id: str):
        self.dir, self.run_id = Path(directory), run_id

    def load(self, device: torch.device) -> dict | None:
        path = self.dir / "state.pt"
        if not path.exists():
            return None
        state = torch.load(path, map_location=device, weights_only=True)
        if state["run_id"] != self.run_id:
            log.info("ignoring %s: written for other settings, data or weights", path)
            return None
        return state

    def save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.pt.tmp"
        torch.save({**state, "run_id": self.run_id}, tmp)
        os.replace(tmp, self.dir / "state.pt")  # atomic: a kill never leaves half a state

    def keep(self, epoch: int, model: SSLModel) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), self.dir / f"epoch{epoch}.pt")

    def kept(self, epoch: int, device: torch.device) -> dict:
        return torch.load(self.dir / f"epoch{epoch}.pt", map_location=device, weights_only=True)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def train(model: SSLModel, images: np.ndarray, cfg: TrainConfig, save,
          resume_dir: str | None = None) -> list[float]:
    """Train `model` on (N, H, W, 3) uint8 images; call save(epoch, model) at each
    checkpoint epoch. Returns the mean loss per epoch.

    With `resume_dir`, the state is kept there every `cfg.resume_every` epochs and a rerun
    continues from it; on CPU with a fixed seed the result equals an uninterrupted run."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; known: {sorted(METHODS)}")
    loss_fn = METHODS[cfg.method]
    device = pick_device(cfg.device)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    n = len(data)
    # Every image is seen once per epoch, in steps of near-equal size (500 images at batch
    # 256 -> 2 x 250): dropping a ragged last batch would skip images, and memorization is
    # what this model is trained to show; a tiny last batch would upset BatchNorm and VICReg.
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    if n // steps_per_epoch < 2:
        raise ValueError(f"training needs at least 2 images per batch, got {n} images")
    total = cfg.epochs * steps_per_epoch
    # channels-last is faster for these convolutions on CPU (about 1.5x) as on CUDA
    model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    keep = set(cfg.checkpoints) | {cfg.epochs}
    history, start, step, first_epoch = [], time.perf_counter(), 0, 1
    resume = Resume(resume_dir, fingerprint(model, images, cfg)) if resume_dir else None
    state = resume.load(device) if resume else None
    if state is not None:
        history, step, first_epoch = _restore(state, resume, model, opt, gen, keep, save, device)
    for epoch in range(first_epoch, cfg.epochs + 1):
        losses = []
        for b, batch in enumerate(torch.randperm(n, generator=gen, device=device)
                                  .tensor_split(steps_per_epoch)):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg.warmup_epochs * steps_per_epoch, cfg.lr)
            x = data[batch].float() / 255
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                _, z_a = model(_views(x, cfg.augment, gen))
                _, z_b = model(_views(x, cfg.augment, gen))
            # the loss in float32: its batch statistics are too coarse in bf16
            loss = loss_fn(z_a.float(), z_b.float(), **cfg.loss)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {b}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
        history.append(float(np.mean(losses)))
        elapsed, done = time.perf_counter() - start, epoch - first_epoch + 1
        log.info("epoch %d/%d loss %.4f  %.0f img/s  eta %.0f s", epoch, cfg.epochs,
                 history[-1], done * n / elapsed, elapsed / done * (cfg.epochs - epoch))
        if epoch in keep:
            save(epoch, model)
            if resume:
                resume.keep(epoch, model)
        if resume and epoch % cfg.resume_every == 0 and epoch < cfg.epochs:
            resume.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "generator": gen.get_state(), "epoch": epoch, "step": step,
                         "history": history})
    if resume:
        resume.clear()
    return history


def _restore(state: dict, resume: Resume, model: SSLModel, opt, gen: torch.Generator,
             keep: set[int], save, device: torch.device) -> tuple[list[float], int, int]:
    """Load a resume state into model, optimizer and generator; re-emit the checkpoints the
    failed job had written. Returns (loss history, step, first epoch to train)."""
    for epoch in sorted(e for e in keep if e <= state["epoch"]):
        snapshot = copy.deepcopy(model)
        snapshot.load_state_dict(resume.kept(epoch, device))
        save(epoch, snapshot)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"].cpu())
    log.info("resuming after epoch %d", state["epoch"])
    return list(state["history"]), state["step"], state["epoch"] + 1


def _views(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    return random_resized_crop_flip(x, cfg, gen).contiguous(memory_format=torch.channels_last)


def load_training_images(images_path: str, split_path: str, subset: str) -> np.ndarray:
    from .store import open_images
    split = pd.read_parquet(split_path)
    rows = np.sort(split.loc[split["set"] == subset, "row"].to_numpy())
    if len(rows) == 0:
        raise ValueError(f"training set {subset!r} is empty in {split_path}")
    return open_images(images_path).get_orthogonal_selection((rows,))


def run_init(out_path: str, *, backbone: str, projector_dims: list[int], width: int,
             seed: int, subset: str, small_stem: bool = True) -> None:
    """The untrained model (epoch 0): the start of training and the untrained control."""
    model = init_model(backbone, projector_dims, width, run_seed(seed, subset), small_stem)
    save_checkpoint(out_path, model, epoch=0)


def run(init_path: str, images_path: str, split_path: str, out_paths: dict[int, str], *,
        subset: str, seed: int, threads: int = 1, resume_dir: str | None = None,
        **params) -> None:
    torch.set_num_threads(threads)
    augment = AugmentConfig(**params.pop("augment", {}))
    cfg = TrainConfig(seed=run_seed(seed, subset), augment=augment, **params)
    missing = set(out_paths) ^ (set(cfg.checkpoints) | {cfg.epochs})
    if missing:
        raise ValueError(f"checkpoint paths and checkpoint epochs differ at {sorted(missing)}")
    model, _ = load_checkpoint(init_path)
    images = load_training_images(images_path, split_path, subset)
    log.info("training %s on %d images of set %s, %d epochs", cfg.method, len(images), subset,
             cfg.epochs)
    train(model, images, cfg, lambda epoch, m: save_checkpoint(out_paths[epoch], m,
                                                                epoch=epoch),
          resume_dir=resume_dir)
