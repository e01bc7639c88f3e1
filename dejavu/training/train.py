"""SSL training of one model on one training set, with states saved at chosen epochs.

The training set is small enough to sit in memory as uint8 once; each step draws a batch,
makes the method's views of it on the device (`augment.py`, a fresh random draw per image),
and takes one optimizer step (AdamW, LARS or SGD) with a warm-up + cosine learning rate.
With a fixed seed on CPU, training is reproducible bit for bit, also across a kill and
resume, and training continued from a saved state reaches the weights of an uninterrupted
run: that is how an epoch sweep adds an epoch without retraining (`run_snapshot`). With
`processes` > 1 the job trains data-parallel (DDP, one process per GPU, or gloo
processes on CPU) and reaches what one process reaches with the same global batch.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from . import distributed, methods
from .augment import AugmentConfig
from ..core.models import SSLModel, load_checkpoint, pick_device, save_checkpoint
from .optim import lr_at, make_optimizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    method: str = "vicreg"
    epochs: int = 400
    checkpoints: tuple[int, ...] = ()   # epochs to save besides the last
    until: int | None = None            # stop after this epoch (None: epochs); the schedule
                                        # is still the one of `epochs`
    batch_size: int = 128               # global: split across data-parallel processes
    optimizer: str = "adamw"            # adamw | lars | sgd
    lr: float = 1e-3
    final_lr_fraction: float = 0.0      # cosine decays to this share of lr
    weight_decay: float = 1e-4
    momentum: float = 0.9               # lars and sgd
    lars_eta: float = 0.001
    warmup_epochs: int = 10
    loss: dict = field(default_factory=dict)     # options of the method (train.loss.<method>)
    augment: dict = field(default_factory=dict)  # changes to the method's augmentation recipe
    classes: int = 0                    # label count, for the supervised baseline
    seed: int = 0
    device: str = "auto"
    resume_every: int = 10              # epochs between resume states (when resuming is on)

    @property
    def last(self) -> int:
        return self.epochs if self.until is None else self.until

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig.from_options({**methods.info(self.method).augment, **self.augment})


def run_seed(seed: int, subset: str) -> int:
    """Seed of one model: models A and B of a seed must differ, also when untrained."""
    return zlib.crc32(f"{seed}/{subset}".encode())


def init_model(backbone: str, projector_dims: list[int], width: int, seed: int,
               small_stem: bool = True, image_size: int = 32, patch_size: int = 4) -> SSLModel:
    torch.manual_seed(seed)
    return SSLModel(backbone, projector_dims, width, small_stem, image_size, patch_size)


def fingerprint(model: SSLModel, images: np.ndarray, cfg: TrainConfig) -> str:
    """Identifies a training run: settings, data and starting weights (not which epochs
    are saved or where it stops: those do not change the weights of an epoch)."""
    same = dataclasses.replace(cfg, checkpoints=(), until=None, resume_every=0)
    h = hashlib.sha256(repr(same).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    for tensor in model.state_dict().values():
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def check(model: SSLModel, n_images: int, cfg: TrainConfig) -> type[methods.Method]:
    """Refuse settings the method cannot train with, before anything is trained."""
    method = methods.get(cfg.method)
    problems = method.check(model.arch["projector_dims"], cfg.batch_size, cfg.loss)
    steps = math.ceil(n_images / cfg.batch_size)
    if n_images // max(1, steps) < method.min_batch:
        problems.append(f"{cfg.method} needs batches of at least {method.min_batch} images, "
                        f"but the training set has {n_images}")
    if problems:
        raise ValueError("; ".join(problems))
    cfg.augment_config()  # unknown augmentation options fail here
    return method


class Resume:
    """Training state kept beside the outputs so a killed job continues where it stopped.

    `<dir>/state.pt` holds model, optimizer, random generator, epoch and loss history;
    `<dir>/epoch<e>.pt` the saved epochs already passed, encoder and training state (the
    workflow deletes a failed job's outputs, so they are re-emitted on resume). States of
    another run (other settings, data or starting weights) are ignored.
    """

    def __init__(self, directory: str, run_id: str, writer: bool = True):
        self.dir, self.run_id, self.writer = Path(directory), run_id, writer  # rank 0 writes

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
        if not self.writer:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.pt.tmp"
        torch.save({**state, "run_id": self.run_id}, tmp)
        os.replace(tmp, self.dir / "state.pt")  # atomic: a kill never leaves half a state

    def keep(self, epoch: int, model: SSLModel, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        torch.save({"encoder": model.state_dict(), "training": state},
                   self.dir / f"epoch{epoch}.pt")

    def kept(self, epoch: int, device: torch.device) -> dict:
        return torch.load(self.dir / f"epoch{epoch}.pt", map_location=device, weights_only=True)

    def clear(self) -> None:
        if self.writer:
            shutil.rmtree(self.dir, ignore_errors=True)


Save = Callable[[int, SSLModel, dict], None]


def train(model: SSLModel, images: np.ndarray, cfg: TrainConfig, save: Save,
          resume_dir: str | None = None, labels: np.ndarray | None = None,
          start: dict | None = None) -> list[float]:
    """Train `model` on (N, H, W, 3) uint8 images (and their labels, for methods that use
    them); call save(epoch, encoder, training_state) at each checkpoint epoch and at
    `cfg.last` (both hold live tensors: the callback writes or copies them). Returns the
    mean loss per epoch.

    `start`, a training state saved earlier by a run with the same fingerprint (settings,
    data, starting weights), continues that run from its epoch instead of from `model`.

    With `resume_dir`, the state is kept there every `cfg.resume_every` epochs and a rerun
    continues from it; on CPU with a fixed seed the result equals an uninterrupted run.
    Inside a process group (see `train_processes`) each process takes its slice of every
    batch; only rank 0 saves and logs."""
    method_cls = check(model, len(images), cfg)
    rank, size = distributed.world()
    device = pick_device(cfg.device)
    if device.type == "cuda" and size > 1:
        device = torch.device("cuda", rank)
    torch.manual_seed(cfg.seed)  # the method's own heads (predictor, prototypes, classifier)
    method = method_cls(model, classes=cfg.classes, **cfg.loss)
    if method.uses_labels and labels is None:
        raise ValueError(f"{cfg.method} trains on labels, but none were given")
    augment = cfg.augment_config()
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    targets = None if labels is None else torch.tensor(np.asarray(labels), dtype=torch.long,
                                                       device=device)
    n = len(data)
    # Every image is seen once per epoch, in steps of near-equal size (500 images at batch
    # 256 -> 2 x 250): dropping a ragged last batch would skip images, and memorization is
    # what this model is trained to show; a tiny last batch would upset BatchNorm and VICReg.
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    method.to(device, memory_format=method.memory_format).train()
    net = method
    if size > 1:
        distributed.globalise_batchnorm(method)
        net = torch.nn.parallel.DistributedDataParallel(
            method, device_ids=[rank] if device.type == "cuda" else None,
            forward_sync_buffers=False)  # BatchNorm statistics are global already
    opt = make_optimizer(cfg.optimizer, method.parameters(), cfg.lr, cfg.weight_decay,
                         cfg.momentum, cfg.lars_eta)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    keep = {e for e in cfg.checkpoints if e < cfg.last} | {cfg.last}
    history, step, first_epoch = [], 0, 1
    run_id = fingerprint(model, images, cfg)
    resume = Resume(resume_dir, run_id, writer=rank == 0) if resume_dir else None
    state = resume.load(device) if resume else None
    if state is not None:
        history, step, first_epoch = _restore(state, resume, method, opt, gen, keep, save,
                                              device, rank)
    elif start is not None:
        if start.get("run_id") != run_id:
            raise ValueError("the saved training state to continue from was written by a run "
                             "with other settings, data or starting weights")
        history, step, first_epoch = _load_state(start, method, opt, gen, device)
        if first_epoch > cfg.last:
            raise ValueError(f"the saved state is at epoch {first_epoch - 1}, after the "
                             f"epoch to stop at ({cfg.last})")

    def training_state(epoch: int) -> dict:
        return {"method": method.state_dict(), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "epoch": epoch, "step": step,
                "history": history, "run_id": run_id}

    clock = time.perf_counter()
    for epoch in range(first_epoch, cfg.last + 1):
        losses = []
        for b, batch in enumerate(torch.randperm(n, generator=gen, device=device)
                                  .tensor_split(steps_per_epoch)):
            progress = methods.Progress(step, total, epoch, cfg.epochs)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg.warmup_epochs * steps_per_epoch, cfg.lr,
                                    cfg.final_lr_fraction)
            sizes = distributed.split_sizes(len(batch), size)
            rows = slice(sum(sizes[:rank]), sum(sizes[:rank + 1]))
            mine = batch[rows]
            views = method.make_views(data[mine].float() / 255, augment, gen, rows, len(batch))
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                loss = net(views, None if targets is None else targets[mine], progress)
            if not torch.isfinite(loss):
                _stop_on_nan(loss, epoch, b, step, method, resume_dir, rank)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            method.after_step(progress)
            losses.append(loss.item())
            step += 1
        history.append(float(np.mean(losses)))
        elapsed, done = time.perf_counter() - clock, epoch - first_epoch + 1
        if rank == 0:
            log.info("epoch %d/%d loss %.4f  %.0f img/s  eta %.0f s", epoch, cfg.last,
                     history[-1], done * n / elapsed, elapsed / done * (cfg.last - epoch))
        if epoch in keep and rank == 0:
            state = training_state(epoch)
            save(epoch, method.encoder(), state)
            if resume:
                resume.keep(epoch, method.encoder(), state)
        if resume and epoch % cfg.resume_every == 0 and epoch < cfg.last:
            resume.save(training_state(epoch))
    if resume:
        resume.clear()
    return history


def _stop_on_nan(loss, epoch: int, b: int, step: int, method, resume_dir, rank: int):
    """Stop with where it happened; keep the last good weights (the NaN step is not applied)
    beside the resume state, which a rerun with other settings would ignore."""
    where = f"loss is {loss.item()} at epoch {epoch}, step {b} (step {step} overall)"
    if resume_dir and rank == 0:
        path = Path(resume_dir) / f"last-good-epoch{epoch}-step{b}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(str(path), method.encoder(), epoch=epoch, step=b)
        where += f"; the weights before this step are kept in {path}"
    raise FloatingPointError(where)


def _restore(state: dict, resume: Resume, method, opt, gen: torch.Generator, keep: set[int],
             save, device: torch.device, rank: int) -> tuple[list[float], int, int]:
    """Load a resume state into method, optimizer and generator; re-emit the checkpoints the
    failed job had written. Returns (loss history, step, first epoch to train)."""
    if rank == 0:
        for epoch in sorted(e for e in keep if e <= state["epoch"]):
            kept = resume.kept(epoch, device)
            snapshot = copy.deepcopy(method.encoder())
            snapshot.load_state_dict(kept["encoder"])
            save(epoch, snapshot, kept["training"])
        log.info("resuming after epoch %d", state["epoch"])
    return _load_state(state, method, opt, gen, device)


def _load_state(state: dict, method, opt, gen: torch.Generator,
                device: torch.device) -> tuple[list[float], int, int]:
    method.load_state_dict(state["method"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"].cpu())
    return list(state["history"]), state["step"], state["epoch"] + 1


class SaveTo:
    """save(epoch, encoder, training_state) writing checkpoint files; with `states`, the
    training state goes into the file too (a *state file*: a checkpoint that training can
    continue from). Picklable for spawned processes."""

    def __init__(self, paths: dict[int, str], states: bool = False):
        self.paths, self.states = paths, states

    def __call__(self, epoch: int, model: SSLModel, state: dict) -> None:
        extra = {"training": state} if self.states else {}
        save_checkpoint(self.paths[epoch], model, epoch=epoch, **extra)


def train_processes(processes: int, model: SSLModel, images: np.ndarray, cfg: TrainConfig,
                    save: Save, resume_dir: str | None = None,
                    labels: np.ndarray | None = None, threads: int | None = None,
                    start: dict | None = None) -> None:
    """`train` in `processes` data-parallel processes on this node (DDP: one per GPU on CUDA,
    gloo processes on CPU); `save` must be picklable (SaveTo). One process: plain `train`."""
    if processes == 1:
        train(model, images, cfg, save, resume_dir, labels, start)
        return
    check(model, len(images), cfg)
    if pick_device(cfg.device).type == "cuda" and torch.cuda.device_count() < processes:
        raise ValueError(f"{processes} training processes need as many GPUs, "
                         f"{torch.cuda.device_count()} are visible")
    threads = threads or torch.get_num_threads()
    torch.multiprocessing.spawn(
        _process, nprocs=processes, join=True,
        args=(processes, distributed.free_port(), max(1, threads // processes), model, images,
              cfg, save, resume_dir, labels, _log_file(), methods.source_file(cfg.method),
              start))


def _log_file() -> str | None:
    files = [h.baseFilename for h in logging.getLogger().handlers
             if isinstance(h, logging.FileHandler)]
    return files[0] if files else None


def _process(rank, size, port, threads, model, images, cfg, save, resume_dir, labels,
             log_file, method_module, start):
    if rank == 0 and log_file:  # the job log is rank 0's
        from ..core.logs import to_file
        to_file(log_file)
    if method_module:  # a spawned process starts with the built-in methods only
        methods.load_modules([method_module])
    torch.set_num_threads(threads)
    device = pick_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(rank)
    distributed.init(rank, size, port, device)
    # spawn hands every process the same shared-memory tensors; each needs its own copy
    model = copy.deepcopy(model)
    try:
        train(model, images, cfg, save, resume_dir, labels, start)
    finally:
        torch.distributed.destroy_process_group()


def load_training_images(images_path: str, split_path: str, subset: str,
                         side: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Images (N, side, side, 3) uint8 and labels of one training set, and the class count.

    Stored images whose region is not the whole canvas (ingested with `fit`), or whose side
    differs from `side`, are brought to it as the eval transform does (shorter side, centre)."""
    from ..core.store import open_images, read_rows, read_square
    split = pd.read_parquet(split_path)
    chosen = split[split["set"] == subset].sort_values("row")
    if len(chosen) == 0:
        raise ValueError(f"training set {subset!r} is empty in {split_path}")
    store, rows = open_images(images_path), chosen["row"].to_numpy()
    canvas = store.shape[1]
    heights = chosen["height"].to_numpy() if "height" in chosen else np.full(len(rows), canvas)
    widths = chosen["width"].to_numpy() if "width" in chosen else np.full(len(rows), canvas)
    side = side or canvas
    if side == canvas and (heights == canvas).all() and (widths == canvas).all():
        images = read_rows(store, rows)
    else:
        images = np.empty((len(rows), side, side, 3), np.uint8)
        for i in range(0, len(rows), 1024):
            x = read_square(store, rows[i:i + 1024], heights[i:i + 1024],
                            widths[i:i + 1024], side)
            images[i:i + 1024] = (x * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return images, chosen["label"].to_numpy(), int(split["label"].max()) + 1


def run_init(out_path: str, *, backbone: str, projector_dims: list[int], width: int,
             seed: int, subset: str, small_stem: bool = True, image_size: int = 32,
             patch_size: int = 4) -> None:
    """The untrained model (epoch 0): the start of training and the untrained control."""
    model = init_model(backbone, projector_dims, width, run_seed(seed, subset), small_stem,
                       image_size, patch_size)
    save_checkpoint(out_path, model, epoch=0)


def run(init_path: str, images_path: str, split_path: str, out_paths: dict[int, str], *,
        subset: str, seed: int, threads: int = 1, processes: int = 1,
        resume_dir: str | None = None, method_modules: list[str] = (), side: int | None = None,
        **params) -> None:
    """The train stage: train from the untrained model to `epochs`, writing a state file
    (checkpoint + training state) at each epoch of `out_paths`."""
    torch.set_num_threads(threads)
    methods.load_modules(list(method_modules))
    images, labels, classes = load_training_images(images_path, split_path, subset, side)
    cfg = TrainConfig(seed=run_seed(seed, subset), classes=classes,
                      checkpoints=tuple(sorted(out_paths)), **params)
    if max(out_paths) != cfg.epochs:
        raise ValueError(f"the last state saved ({max(out_paths)}) is not the last epoch "
                         f"({cfg.epochs})")
    model, _ = load_checkpoint(init_path)
    log.info("training %s on %d images of set %s, %d epochs, %d process(es)", cfg.method,
             len(images), subset, cfg.epochs, processes)
    train_processes(processes, model, images, cfg, SaveTo(out_paths, states=True), resume_dir,
                    labels, threads)


def run_snapshot(init_path: str, state_path: str | None, images_path: str, split_path: str,
                 out_path: str, *, epoch: int, subset: str, seed: int, threads: int = 1,
                 processes: int = 1, method_modules: list[str] = (), side: int | None = None,
                 **params) -> None:
    """The checkpoint evaluated at `epoch`: taken from the state file saved at that epoch,
    or trained on from the nearest state before it (from the untrained model where there is
    none) with the run's own schedule, which reaches the weights of an uninterrupted run."""
    torch.set_num_threads(threads)
    if state_path is not None:
        model, saved = load_checkpoint(state_path)
        if saved["epoch"] == epoch:
            save_checkpoint(out_path, model, epoch=epoch)
            return
        if saved["epoch"] > epoch:
            raise ValueError(f"{state_path} is at epoch {saved['epoch']}, after {epoch}")
    methods.load_modules(list(method_modules))
    images, labels, classes = load_training_images(images_path, split_path, subset, side)
    cfg = TrainConfig(seed=run_seed(seed, subset), classes=classes, until=epoch, **params)
    start = None
    if state_path is not None:
        # on the CPU: each data-parallel process moves it to its own device
        start = torch.load(state_path, map_location="cpu", weights_only=True)["training"]
    model, _ = load_checkpoint(init_path)
    log.info("training %s on %d images of set %s from epoch %d to %d (of %d)", cfg.method,
             len(images), subset, start["epoch"] if start else 0, epoch, cfg.epochs)
    train_processes(processes, model, images, cfg, SaveTo({epoch: out_path}), None, labels,
                    threads, start)
