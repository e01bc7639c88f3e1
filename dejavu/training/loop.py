"""The SSL training loop: one model on one training set, read through `training.loader`
(kept on the device when small, else streamed), with states saved at chosen epochs (the
stages that call it are in `training.train`).

Each step draws a batch, makes the method's views of it on the device (`augment.py`, a fresh
random draw per image), and takes one optimizer step (AdamW, LARS or SGD) with a warm-up +
cosine learning rate. With a fixed seed on CPU, training is reproducible bit for bit, also
across a kill and resume, and training continued from a saved state reaches the weights of
an uninterrupted run. Inside a process group each process takes its slice of every batch
and reaches what one process reaches with the same global batch.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.models import SSLModel, memory_format, pick_device, save_checkpoint
from ..core.resume import ResumeState, drive
from . import distributed, methods
from .augment import AugmentConfig
from .loader import Images, Loader, LoaderConfig, as_images
from ..core.optim import Optimizer, lr_at, make_optimizer

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


def fingerprint(model: SSLModel, images: Images, cfg: TrainConfig) -> str:
    """Identifies a training run: settings, data and starting weights (not which epochs
    are saved or where it stops, nor how images are loaded: those do not change the weights
    of an epoch). The images are hashed a block at a time, in order."""
    same = dataclasses.replace(cfg, checkpoints=(), until=None, resume_every=0)
    h = hashlib.sha256(repr(same).encode())
    as_images(images).digest(h)
    for tensor in model.state_dict().values():
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def check(model: SSLModel, n_images: int, cfg: TrainConfig) -> type[methods.Method]:
    """Refuse settings the method cannot train with, before anything is trained."""
    method = methods.get(cfg.method)
    problems = method.check(model.arch["projector_dims"], cfg.batch_size, cfg.loss,
                            [model.arch["backbone"]])
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

    `<dir>/state.pt` holds model, optimizer, random generator, epoch and loss history (a
    `core.resume.ResumeState`: states of another run are ignored); `<dir>/epoch<e>.pt` the
    saved epochs already passed, encoder and training state (the workflow deletes a failed
    job's outputs, so they are re-emitted on resume).
    """

    def __init__(self, directory: str, run_id: str, writer: bool = True):
        self.dir, self.writer = Path(directory), writer  # rank 0 writes
        self.state = ResumeState(self.dir / "state.pt", run_id, writer)

    def load(self, device: torch.device) -> dict | None:
        return self.state.load(device)

    def save(self, state: dict) -> None:
        self.state.save(state)

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


def train(model: SSLModel, images: np.ndarray | Images, cfg: TrainConfig, save: Save,
          resume_dir: str | None = None, labels: np.ndarray | None = None,
          start: dict | None = None, loader: LoaderConfig = LoaderConfig(),
          deadline: float | None = None) -> list[float]:
    """Train `model` on (N, H, W, 3) uint8 images (an array, or a set read from the store
    through `loader`) and their labels, for methods that use them; call
    save(epoch, encoder, training_state) at each checkpoint epoch and at `cfg.last` (both
    hold live tensors: the callback writes or copies them). Returns the mean loss per
    epoch.

    `start`, a training state saved earlier by a run with the same fingerprint (settings,
    data, starting weights), continues that run from its epoch instead of from `model`.

    With `resume_dir`, the state is kept there every `cfg.resume_every` epochs and a rerun
    continues from it; on CPU with a fixed seed the result equals an uninterrupted run.
    With a `deadline` (a `time.time()`), training stops after the first epoch past which
    another one would end too close to it: it keeps the resume state of that epoch and
    raises `OutOfTime`; a rerun continues from it as from a killed job's (at least one
    epoch is trained per call, so a chain of calls always finishes).

    Inside a process group (see `train_processes`) each process takes its slice of every
    batch; only rank 0 saves and logs."""
    run = Run.prepare(model, as_images(images), cfg, labels, loader)
    run.keep = {e for e in cfg.checkpoints if e < cfg.last} | {cfg.last}
    run.save, run.resume_dir = save, resume_dir
    run.resume = Resume(resume_dir, run.run_id, writer=run.rank == 0) if resume_dir else None
    drive(run, cfg.last, first=run.start_from(start), resume=run.resume, deadline=deadline,
          save_every=cfg.resume_every, device=run.device, agree=run.agree, sync=run.sync)
    return run.history


@dataclass
class Run:
    """One training run's moving parts, carried from step to step."""
    cfg: TrainConfig
    method: methods.Method
    net: torch.nn.Module        # the method, or its DDP wrapper
    opt: Optimizer
    gen: torch.Generator        # every random draw of the run: batches and augmentations
    loader: Loader              # the training images, batch by batch, on the device
    targets: torch.Tensor | None
    augment: AugmentConfig
    device: torch.device
    rank: int
    size: int
    run_id: str = ""
    history: list[float] = field(default_factory=list)
    step: int = 0
    keep: set[int] = field(default_factory=set)  # epochs to save (and keep for a rerun)
    save: Save | None = None
    resume: Resume | None = None
    resume_dir: str | None = None
    first: int = 1                               # the first epoch this call trains
    clock: float = field(default_factory=time.perf_counter)

    @classmethod
    def prepare(cls, model: SSLModel, images: Images, cfg: TrainConfig,
                labels: np.ndarray | None, loader: LoaderConfig = LoaderConfig()) -> Run:
        """The method around `model`, the data's loader, the optimizer and generator."""
        method_cls = check(model, len(images), cfg)
        rank, size = distributed.world()
        device = pick_device(cfg.device)
        if device.type == "cuda" and size > 1:
            device = torch.device("cuda", rank)
        torch.manual_seed(cfg.seed)  # the method's own heads (predictor, prototypes, ...)
        method = method_cls(model, classes=cfg.classes, **cfg.loss)
        if method.uses_labels and labels is None:
            raise ValueError(f"{cfg.method} trains on labels, but none were given")
        augment = cfg.augment_config()
        source = Loader(images, loader, device)
        targets = None if labels is None else torch.tensor(np.asarray(labels),
                                                           dtype=torch.long, device=device)
        method.to(device, memory_format=memory_format(device)).train()
        net = method
        if size > 1:
            distributed.globalise_batchnorm(method)
            net = torch.nn.parallel.DistributedDataParallel(
                method, device_ids=[rank] if device.type == "cuda" else None,
                forward_sync_buffers=False)  # BatchNorm statistics are global already
        opt = make_optimizer(cfg.optimizer, method.parameters(), cfg.lr, cfg.weight_decay,
                             cfg.momentum, cfg.lars_eta)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        run = cls(cfg, method, net, opt, gen, source, targets, augment, device, rank, size)
        # one pass over the set, by rank 0 (each process has the same model and set)
        run.run_id = distributed.from_rank0(lambda: fingerprint(model, images, cfg))
        return run

    @property
    def steps_per_epoch(self) -> int:
        # Every image is seen once per epoch, in steps of near-equal size (500 images at
        # batch 256 -> 2 x 250): dropping a ragged last batch would skip images, and
        # memorization is what this model is trained to show; a tiny last batch would
        # upset BatchNorm and VICReg.
        return math.ceil(len(self.loader.images) / self.cfg.batch_size)

    @property
    def total(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch

    def start_from(self, start: dict | None) -> int:
        """Load the saved training state to continue from, if any (a resume state of this
        job's own, loaded later by `drive`, takes precedence); the first epoch to train."""
        if start is None:
            return 1
        if start.get("run_id") != self.run_id:
            raise ValueError("the saved training state to continue from was written by a run "
                             "with other settings, data or starting weights")
        self.first = self.load(start)
        if self.first > self.cfg.last:
            raise ValueError(f"the saved state is at epoch {self.first - 1}, after the "
                             f"epoch to stop at ({self.cfg.last})")
        return self.first

    # `core.resume.drive` runs the run an epoch at a time (Resumable)
    def run_unit(self, epoch: int) -> None:
        """Train epoch `epoch`, log it, save it if asked for (and keep it for a rerun)."""
        self.history.append(self.train_epoch(epoch, self.resume_dir))
        self.log_epoch(epoch)
        if epoch in self.keep and self.rank == 0:
            state = self.state(epoch)
            self.save(epoch, self.method.encoder(), state)
            if self.resume:
                self.resume.keep(epoch, self.method.encoder(), state)

    def restore(self, state: dict) -> int:
        """Load this job's own resume state; re-emit the saved epochs the failed job had
        written (the workflow deletes a failed job's outputs). The next epoch."""
        if self.rank == 0:
            for epoch in sorted(e for e in self.keep if e <= state["epoch"]):
                kept = self.resume.kept(epoch, self.device)
                snapshot = copy.deepcopy(self.method.encoder())
                snapshot.load_state_dict(kept["encoder"])
                self.save(epoch, snapshot, kept["training"])
        self.first, self.clock = self.load(state), time.perf_counter()
        return self.first

    def agree(self, stop: bool) -> bool:
        """Rank 0's decision, for every process (all stop after the same epoch)."""
        if self.size == 1:
            return stop
        flag = torch.tensor([float(stop)], device=self.device)
        torch.distributed.broadcast(flag, src=0)
        return bool(flag.item())

    def sync(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def train_epoch(self, epoch: int, resume_dir: str | None) -> float:
        """One pass over the data in a fresh seeded order; the epoch's mean loss."""
        order = torch.randperm(len(self.loader.images), generator=self.gen, device=self.device)
        batches = order.tensor_split(self.steps_per_epoch)
        rows = [self.my_rows(len(batch)) for batch in batches]
        mine = [batch[r] for batch, r in zip(batches, rows)]
        losses = [self.train_step(images, mine[b], rows[b], len(batches[b]), epoch, b,
                                  resume_dir)
                  for b, images in enumerate(self.loader.batches(mine))]
        return float(np.mean(losses))

    def my_rows(self, batch_size: int) -> slice:
        """This process's slice of a global batch."""
        sizes = distributed.split_sizes(batch_size, self.size)
        return slice(sum(sizes[:self.rank]), sum(sizes[:self.rank + 1]))

    def train_step(self, images: torch.Tensor, mine: torch.Tensor, rows: slice,
                   batch_size: int, epoch: int, b: int, resume_dir: str | None) -> float:
        """This process's slice of a batch (its `images`, set positions `mine`): views,
        loss, one optimizer step."""
        cfg, method = self.cfg, self.method
        progress = methods.Progress(self.step, self.total, epoch, cfg.epochs)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.total, cfg.warmup_epochs * self.steps_per_epoch,
                                cfg.lr, cfg.final_lr_fraction)
        views = method.make_views(images.float() / 255, self.augment, self.gen, rows,
                                  batch_size)
        with torch.autocast(self.device.type, torch.bfloat16,
                            enabled=self.device.type == "cuda"):
            loss = self.net(views, None if self.targets is None else self.targets[mine],
                            progress)
        if not torch.isfinite(loss):
            _stop_on_nan(loss, epoch, b, self.step, method, resume_dir, self.rank)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        method.after_step(progress)
        self.step += 1
        return loss.item()

    def log_epoch(self, epoch: int) -> None:
        if self.rank != 0:
            return
        elapsed, done = time.perf_counter() - self.clock, epoch - self.first + 1
        log.info("epoch %d/%d loss %.4f  %.0f img/s  eta %.0f s", epoch, self.cfg.last,
                 self.history[-1], done * len(self.loader.images) / elapsed,
                 elapsed / done * (self.cfg.last - epoch))

    def state(self, epoch: int) -> dict:
        return {"method": self.method.state_dict(), "optimizer": self.opt.state_dict(),
                "generator": self.gen.get_state(), "epoch": epoch, "step": self.step,
                "history": self.history, "run_id": self.run_id}

    def load(self, state: dict) -> int:
        """Method, optimizer, generator, step and history from a state; the next epoch."""
        self.method.load_state_dict(state["method"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"].cpu())
        self.history, self.step = list(state["history"]), state["step"]
        return state["epoch"] + 1


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
