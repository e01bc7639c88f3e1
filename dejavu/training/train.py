"""The init, train and snapshot stages: SSL training of one model on one training set, with
states saved at chosen epochs (the loop itself: `training.loop`).

The training set is read from the store through `training.loader` (kept on the device when
it fits `train.loader.cache_mb`, else streamed a batch at a time); each step draws a batch,
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
import logging
import sys
import zlib

import numpy as np
import pandas as pd
import torch

from ..core.models import SSLModel, load_checkpoint, pick_device, save_checkpoint
from ..core.deadline import OUT_OF_TIME_EXIT, OutOfTime, deadline_after
from ..data import removal
from ..data.split import SetImages
from . import distributed, methods
from .loader import Images, LoaderConfig
from .loop import Resume, Run, Save, TrainConfig, check, fingerprint, train  # noqa: F401

log = logging.getLogger(__name__)


def run_seed(seed: int, subset: str) -> int:
    """Seed of one model: models A and B of a seed must differ, also when untrained."""
    return zlib.crc32(f"{seed}/{subset}".encode())


def init_model(backbone: str, projector_dims: list[int], width: int, seed: int,
               small_stem: bool = True, image_size: int = 32, patch_size: int = 4,
               pool: str = "cls") -> SSLModel:
    torch.manual_seed(seed)
    return SSLModel(backbone, projector_dims, width, small_stem, image_size, patch_size,
                    pool=pool)


class SaveTo:
    """save(epoch, encoder, training_state) writing checkpoint files; with `states`, the
    training state goes into the file too (a *state file*: a checkpoint that training can
    continue from). Picklable for spawned processes."""

    def __init__(self, paths: dict[int, str], states: bool = False):
        self.paths, self.states = paths, states

    def __call__(self, epoch: int, model: SSLModel, state: dict) -> None:
        extra = {"training": state} if self.states else {}
        save_checkpoint(self.paths[epoch], model, epoch=epoch, **extra)


def train_processes(processes: int, model: SSLModel, images: np.ndarray | Images,
                    cfg: TrainConfig, save: Save, resume_dir: str | None = None,
                    labels: np.ndarray | None = None, threads: int | None = None,
                    start: dict | None = None, loader: LoaderConfig = LoaderConfig(),
                    deadline: float | None = None) -> None:
    """`train` in `processes` data-parallel processes on this node (DDP: one per GPU on CUDA,
    gloo processes on CPU); `save` and `images` must be picklable (SaveTo, SetImages: each
    process opens the store). One process: plain `train`. Raises OutOfTime as `train`
    does."""
    if processes == 1:
        train(model, images, cfg, save, resume_dir, labels, start, loader, deadline)
        return
    check(model, len(images), cfg)
    if pick_device(cfg.device, processes).type == "cuda" and \
            torch.cuda.device_count() < processes:
        raise ValueError(f"{processes} training processes need as many GPUs, "
                         f"{torch.cuda.device_count()} are visible")
    threads = threads or torch.get_num_threads()
    try:
        torch.multiprocessing.spawn(
            _process, nprocs=processes, join=True,
            args=(processes, distributed.free_port(), max(1, threads // processes), model,
                  images, cfg, save, resume_dir, labels, _log_file(),
                  methods.source_file(cfg.method), start, loader, deadline))
    except torch.multiprocessing.ProcessExitedException as e:
        if e.exit_code == OUT_OF_TIME_EXIT:
            raise OutOfTime("the data-parallel processes stopped at the time limit") from None
        raise


def _log_file() -> str | None:
    files = [h.baseFilename for h in logging.getLogger().handlers
             if isinstance(h, logging.FileHandler)]
    return files[0] if files else None


def _process(rank, size, port, threads, model, images, cfg, save, resume_dir, labels,
             log_file, method_module, start, loader, deadline):
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
        train(model, images, cfg, save, resume_dir, labels, start, loader, deadline)
    except OutOfTime:
        sys.exit(OUT_OF_TIME_EXIT)  # every process, after rank 0 kept the state
    finally:
        torch.distributed.destroy_process_group()


def training_set(images_path: str, split_path: str, subset: str,
                 side: int | None = None,
                 removed: str | None = None) -> tuple[SetImages, np.ndarray, int]:
    """One training set, read as the eval transform reads it (`data.split.SetImages`: each
    image's region, shorter side to `side`, centre square), its labels, and the class
    count. A removal run's (`dejavu.data.removal`) is its base set without the ids listed in the
    parquet file `removed`."""
    rows = None
    if removed is not None:
        split = pd.read_parquet(split_path, columns=["id", "row", "set"])
        gone = pd.read_parquet(removed)["id"]
        mine = split[split["set"] == removal.base(subset)]
        if not gone.isin(mine["id"]).all():
            raise ValueError(f"{removed}: ids not in set {removal.base(subset)}")
        rows = np.sort(mine.loc[~mine["id"].isin(gone), "row"].to_numpy())
    images = SetImages(images_path, split_path, removal.base(subset), side, rows)
    if len(images) == 0:
        raise ValueError(f"training set {subset!r} is empty in {split_path}")
    classes = int(pd.read_parquet(split_path, columns=["label"])["label"].max()) + 1
    return images, images.labels, classes


def run_init(out_path: str, *, backbone: str, projector_dims: list[int], width: int,
             seed: int, subset: str, small_stem: bool = True, image_size: int = 32,
             patch_size: int = 4, pool: str = "cls") -> None:
    """The untrained model (epoch 0): the start of training and the untrained control."""
    model = init_model(backbone, projector_dims, width, run_seed(seed, removal.base(subset)),
                       small_stem, image_size, patch_size, pool)
    save_checkpoint(out_path, model, epoch=0)


def run(init_path: str, images_path: str, split_path: str, out_paths: dict[int, str], *,
        subset: str, seed: int, threads: int = 1, processes: int = 1,
        resume_dir: str | None = None, method_modules: list[str] = (), side: int | None = None,
        loader: dict | None = None, max_runtime: float | None = None,
        removed: str | None = None, **params) -> None:
    """The train stage: train from the untrained model to `epochs`, writing a state file
    (checkpoint + training state) at each epoch of `out_paths`. With `max_runtime`
    (minutes from now), it may stop early at a resume state (OutOfTime): run it again."""
    deadline = deadline_after(max_runtime)
    torch.set_num_threads(threads)
    methods.load_modules(list(method_modules))
    images, labels, classes = training_set(images_path, split_path, subset, side, removed)
    cfg = TrainConfig(seed=run_seed(seed, removal.base(subset)), classes=classes,
                      checkpoints=tuple(sorted(out_paths)), **params)
    if max(out_paths) != cfg.epochs:
        raise ValueError(f"the last state saved ({max(out_paths)}) is not the last epoch "
                         f"({cfg.epochs})")
    model, _ = load_checkpoint(init_path)
    log.info("training %s on %d images of set %s, %d epochs, %d process(es)", cfg.method,
             len(images), subset, cfg.epochs, processes)
    train_processes(processes, model, images, cfg, SaveTo(out_paths, states=True), resume_dir,
                    labels, threads, loader=LoaderConfig(**(loader or {})), deadline=deadline)


def run_snapshot(init_path: str, state_path: str | None, images_path: str, split_path: str,
                 out_path: str, *, epoch: int, subset: str, seed: int, threads: int = 1,
                 processes: int = 1, method_modules: list[str] = (), side: int | None = None,
                 loader: dict | None = None, removed: str | None = None, **params) -> None:
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
    images, labels, classes = training_set(images_path, split_path, subset, side, removed)
    cfg = TrainConfig(seed=run_seed(seed, removal.base(subset)), classes=classes, until=epoch,
                      **params)
    start = None
    if state_path is not None:
        # on the CPU: each data-parallel process moves it to its own device
        start = torch.load(state_path, map_location="cpu", weights_only=True)["training"]
    model, _ = load_checkpoint(init_path)
    log.info("training %s on %d images of set %s from epoch %d to %d (of %d)", cfg.method,
             len(images), subset, start["epoch"] if start else 0, epoch, cfg.epochs)
    train_processes(processes, model, images, cfg, SaveTo({epoch: out_path}), None, labels,
                    threads, start, LoaderConfig(**(loader or {})))
