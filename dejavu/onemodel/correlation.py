"""Correlation classifiers of the one-model test (definitions §5; Kokhlikyan et al., NeurIPS 2024).

A correlation classifier `g` predicts an attacked image's object class from its background
crop alone. It learns from crops of images that are neither in the attacked set nor in the
public set the k-NN searches -- the other training set's annotated images: the classifier
that stands in for the reference model when A is attacked is trained on bbox_B, and the
other way round. It measures what the background says about the class in general, which is
what the reference model's k-NN measures in the two-model test.

Two kinds:
- `resnet`: a ResNet trained with cross-entropy on the crops (the crop transform of the k-NN,
  plus random resized crops and flips), its softmax as the class distribution;
- `naive_bayes`: counts of discrete crop tags, `score(c) = prod_t count_c(t) / count(t)` with
  Laplace smoothing, normalised over classes. The synthetic benchmark knows each crop's tags
  (its scene type and the colours of the details inside the crop); other datasets give a
  tags file (`onemodel.naive_bayes`, which needs no torch).

Both give per crop a prediction (ties: the smaller class id) and a confidence, the negative
entropy of the class distribution -- the k-NN's confidence, so the two rank alike.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..training.augment import ViewAugment, apply, sample
from ..attack.knn import write_table
from ..core.deadline import deadline_after
from ..core.models import INPUT_MEAN, INPUT_STD, memory_format, pick_device
from ..core.resume import ResumeState, drive
from ..core.optim import AdamW, lr_at
from .distributions import (BLOCK_CROPS, classify, entropy, joined,  # noqa: F401
                            softmax, summarize)
from .naive_bayes import (TagCounts, detail_colour, fit_naive_bayes,  # noqa: F401
                          naive_bayes_log_scores, read_tags, synthetic_tags, tags_of)

log = logging.getLogger(__name__)

CLASSIFIERS = ("resnet", "naive_bayes")
HOLD_BYTES = 2**30  # training crops up to this size are held in memory; more stream
TRAIN_ON = ("other", "other+heldout")


# ---------------------------------------------------------------- ResNet on crops

class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class ResNetClassifier(nn.Module):
    """A ResNet (He et al., 2016) of basic blocks with stage widths width * (1, 2, 4, 8);
    width 64 is ResNet-18/34's. `small_stem`: one 3x3 convolution (small images), else the
    7x7/2 convolution and max-pool."""

    def __init__(self, classes: int, depth: int = 18, width: int = 16, small_stem: bool = True):
        super().__init__()
        if depth not in BLOCKS:
            raise ValueError(f"ResNet depth {depth} is not one of {sorted(BLOCKS)}")
        if small_stem:
            stem = [nn.Conv2d(3, width, 3, 1, 1, bias=False)]
        else:
            stem = [nn.Conv2d(3, width, 7, 2, 3, bias=False)]
        stem += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        if not small_stem:
            stem.append(nn.MaxPool2d(3, 2, 1))
        layers, c_in = list(stem), width
        for stage, n in enumerate(BLOCKS[depth]):
            c_out = width * 2 ** stage
            for b in range(n):
                layers.append(BasicBlock(c_in, c_out, 2 if stage and b == 0 else 1))
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) floats in [0, 1] -> class logits (N, C)."""
        h = self.features((x - INPUT_MEAN) / INPUT_STD)
        return self.head(h.mean(dim=(2, 3)))


@dataclass(frozen=True)
class ResNetConfig:
    depth: int = 18
    width: int = 16
    small_stem: bool = True
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 5
    scale_min: float = 0.5     # random-resized-crop area fraction: U(scale_min, 1)
    flip: bool = True
    seed: int = 0

    def augment(self) -> ViewAugment:
        return ViewAugment(scale=(self.scale_min, 1.0), flip_prob=0.5 if self.flip else 0.0,
                           jitter_prob=0.0, grayscale_prob=0.0)


def to_batch(crops: np.ndarray, device: torch.device,
             fmt: torch.memory_format) -> torch.Tensor:
    """(n, S, S, 3) uint8 -> (n, 3, S, S) floats in [0, 1] on the device, in memory
    format `fmt` (the device's: `dejavu.core.models.memory_format`)."""
    x = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=fmt)


class StoredRows:
    """Rows `rows` of a stored image array, read when indexed by positions (any order):
    training crops too many to hold stream a batch at a time."""

    def __init__(self, store, rows: np.ndarray):
        self.store, self.rows = store, np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions) -> np.ndarray:
        from ..core.store import read_rows
        rows = self.rows[np.asarray(positions)]
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self.store.shape[1:]), np.uint8)
        out[order] = read_rows(self.store, rows[order])
        return out


def train_resnet(crops: np.ndarray | StoredRows, labels: np.ndarray, classes: int,
                 cfg: ResNetConfig, device: torch.device, resume_dir: str | None = None,
                 deadline: float | None = None) -> ResNetClassifier:
    """Cross-entropy training on (crop -> label) with AdamW, linear warm-up and cosine decay.
    Seeded: the same crops and settings give the same weights on the same device, held or
    read from the store. With `resume_dir`, a state is kept there after every epoch and a
    rerun continues from it; with a `deadline` (a time.time()), training stops at such a
    state when another epoch would end too close to it and raises OutOfTime
    (`core.resume.drive`)."""
    fit = ResNetFit.prepare(crops, labels, classes, cfg, device)
    resume = (ResumeState(Path(resume_dir, "state.pt"), fit.run_id()) if resume_dir
              else None)
    drive(fit, cfg.epochs, resume=resume, deadline=deadline, save_every=1, device=device)
    return fit.model.eval()


@dataclass
class ResNetFit:
    """A correlation ResNet in training: model, optimizer, generators (batch order, and
    augmentations on the device) and data; `core.resume.drive` runs it an epoch at a time."""
    cfg: ResNetConfig
    model: ResNetClassifier
    opt: AdamW
    crops: np.ndarray | StoredRows
    labels: torch.Tensor
    device: torch.device
    fmt: torch.memory_format
    order_gen: torch.Generator
    aug_gen: torch.Generator
    step: int = 0
    first: int = 1                  # the first epoch of this call
    clock: float = field(default_factory=time.perf_counter)

    @classmethod
    def prepare(cls, crops: np.ndarray | StoredRows, labels: np.ndarray, classes: int,
                cfg: ResNetConfig, device: torch.device) -> ResNetFit:
        torch.manual_seed(cfg.seed)
        fmt = memory_format(device)
        model = ResNetClassifier(classes, cfg.depth, cfg.width, cfg.small_stem)
        model = model.to(device).to(memory_format=fmt).train()
        opt = AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        return cls(cfg, model, opt, crops, torch.from_numpy(labels.astype(np.int64)), device,
                   fmt, torch.Generator().manual_seed(cfg.seed),
                   torch.Generator(device).manual_seed(cfg.seed))

    @property
    def batch(self) -> int:
        return min(self.cfg.batch_size, len(self.crops))

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.crops) // self.batch)  # full batches only (BatchNorm)

    def run_id(self) -> str:
        """The run's settings, labels, crops (read a block at a time) and starting weights."""
        h = hashlib.sha256(repr(self.cfg).encode())
        h.update(self.labels.numpy().tobytes())
        for start in range(0, len(self.crops), 4096):
            positions = np.arange(start, min(len(self.crops), start + 4096))
            h.update(np.ascontiguousarray(self.crops[positions]).tobytes())
        for tensor in self.model.state_dict().values():
            h.update(tensor.detach().cpu().numpy().tobytes())
        return h.hexdigest()

    def run_unit(self, epoch: int) -> None:
        """Epoch `epoch` (1-based): a fresh seeded order, full batches, augmented views."""
        cfg, device, fmt, batch = self.cfg, self.device, self.fmt, self.batch
        total, view = cfg.epochs * self.steps_per_epoch, cfg.augment()
        perm = torch.randperm(len(self.crops), generator=self.order_gen)
        loss_sum = correct = 0.0
        for b in range(self.steps_per_epoch):
            idx = perm[b * batch:(b + 1) * batch]
            x = to_batch(self.crops[idx.numpy()], device, fmt)
            x = apply(x, sample(len(x), view, self.aug_gen, device), view).contiguous(
                memory_format=fmt)
            y = self.labels[idx].to(device)
            for group in self.opt.param_groups:
                group["lr"] = lr_at(self.step, total,
                                    cfg.warmup_epochs * self.steps_per_epoch, cfg.lr)
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                logits = self.model(x)
                loss = nn.functional.cross_entropy(logits.float(), y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.step += 1
            loss_sum += float(loss.detach())
            correct += float((logits.argmax(1) == y).sum())
        if epoch % max(1, cfg.epochs // 10) == 0 or epoch == cfg.epochs:
            seen = (epoch - self.first + 1) * self.steps_per_epoch * batch
            log.info("epoch %d/%d: loss %.3f, training accuracy %.3f, %.0f img/s", epoch,
                     cfg.epochs, loss_sum / self.steps_per_epoch,
                     correct / (self.steps_per_epoch * batch),
                     seen / (time.perf_counter() - self.clock))

    def state(self, epoch: int) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "order": self.order_gen.get_state(), "augment": self.aug_gen.get_state(),
                "step": self.step, "epoch": epoch}

    def restore(self, state: dict) -> int:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.order_gen.set_state(state["order"].cpu())
        self.aug_gen.set_state(state["augment"].cpu())
        self.step, self.first, self.clock = state["step"], state["epoch"] + 1, time.perf_counter()
        return self.first


@torch.no_grad()
def resnet_probabilities(model: ResNetClassifier, crops: np.ndarray, device: torch.device,
                         batch_size: int = 512) -> np.ndarray:
    """(N, C) softmax of the classifier on each crop (no augmentation), float64."""
    model.eval()
    fmt = memory_format(device)
    out = []
    for i in range(0, len(crops), batch_size):
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(to_batch(crops[i:i + batch_size], device, fmt))
        out.append(logits.float().cpu().numpy().astype(np.float64))
    return softmax(np.concatenate(out) if out else np.zeros((0, model.head.out_features)))


# ---------------------------------------------------------------- the stage

def training_mask(crops: pd.DataFrame, trained_on: str, train_on: str = "other") -> np.ndarray:
    """The valid crops a classifier trained on set `trained_on` (A or B) learns from: that
    set's attacked images, and the held-out ones with train_on = other+heldout."""
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on {train_on!r} is not one of {TRAIN_ON}")
    sets = [trained_on] + (["heldout"] if train_on == "other+heldout" else [])
    return (crops["crop_row"].to_numpy() >= 0) & crops["set"].isin(sets).to_numpy()


def predictions(crops: pd.DataFrame, said: dict[str, np.ndarray],
                trained: np.ndarray) -> pd.DataFrame:
    """One row per crop: what the classifier says (`summarize`), whether the crop trained
    it; the top classes and their probabilities are lists (`write_table`)."""
    out = crops[["crop_row", "row", "id", "label", "set"]].reset_index(drop=True)
    out["trained"] = trained
    out["prediction"] = said["prediction"]
    out["correct"] = out["prediction"].to_numpy() == out["label"].to_numpy()
    out["confidence"] = said["confidence"]
    return out


def resnet_stage(crops_path: str, crops: pd.DataFrame, train: np.ndarray, classes: int,
                 options: dict, device: torch.device, model_path: str | None,
                 resume_dir: str | None, deadline: float | None) -> dict[str, np.ndarray]:
    """The ResNet classifier of the stage (`options`: onemodel.resnet): trained on the
    `train` crops (held up to HOLD_BYTES, else read a batch at a time), saved, and its class
    probabilities for every crop, predicted and summarized block by block."""
    from ..core.store import open_images, read_rows
    store = open_images(crops_path)
    rows, labels = crops["crop_row"].to_numpy(), crops["label"].to_numpy()
    held = int(train.sum()) * int(np.prod(store.shape[1:])) <= HOLD_BYTES
    training = read_rows(store, rows[train]) if held else StoredRows(store, rows[train])
    model = train_resnet(training, labels[train], classes, ResNetConfig(**options), device,
                         resume_dir, deadline)
    said = joined([summarize(resnet_probabilities(
        model, read_rows(store, rows[i:i + BLOCK_CROPS]), device))
        for i in range(0, len(rows), BLOCK_CROPS)])
    torch.save({"config": options, "classes": classes,
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, model_path)
    return said


def run(crops_path: str, crops_table: str, split_path: str, out_path: str, *, classifier: str,
        trained_on: str, train_on: str = "other", model_path: str | None = None,
        index_path: str | None = None, tags_path: str | None = None, smoothing: float = 1.0,
        resnet: dict | None = None, device: str = "auto", threads: int = 1,
        resume_dir: str | None = None, max_runtime: float | None = None) -> None:
    """Train one correlation classifier on the crops of set `trained_on` and write its
    predictions for every valid crop (with `trained` marking its own training crops). A
    ResNet keeps a resume state in `resume_dir` after every epoch; with `max_runtime`
    (minutes from now) it may stop early at one (OutOfTime): run it again."""
    from ..core.store import read_index
    torch.set_num_threads(threads)
    table = pd.read_parquet(crops_table)
    # in stored order, so the crops store is read in dense runs
    crops = table[table["crop_row"] >= 0].sort_values("crop_row", ignore_index=True)
    classes = int(pd.read_parquet(split_path, columns=["label"])["label"].max()) + 1
    train = training_mask(crops, trained_on, train_on)
    if not train.any():
        raise ValueError(f"no valid crops of set {trained_on} to train the {classifier} "
                         f"correlation classifier on ({crops_table})")
    labels = crops["label"].to_numpy()
    log.info("%s correlation classifier: %d training crops (set %s, %s), %d crops predicted",
             classifier, int(train.sum()), trained_on, train_on, len(crops))
    if classifier == "resnet":
        said = resnet_stage(crops_path, crops, train, classes, resnet or {},
                             pick_device(device), model_path, resume_dir,
                             deadline_after(max_runtime))
    elif classifier == "naive_bayes":
        if tags_path:
            tags = tags_of(read_tags(tags_path), crops["id"])
        elif index_path:
            tags = synthetic_tags(read_index(index_path, ["scene", "details"],
                                             rows=crops["row"].to_numpy()), crops)
        else:
            raise ValueError("naive_bayes needs crop tags: a tags file, or the synthetic "
                             "benchmark's index")
        untagged = sum(1 for t in tags if not t)
        if untagged:
            log.warning("%d of %d crops have no tags (their prediction is class 0 with the "
                        "lowest confidence)", untagged, len(tags))
        fitted = fit_naive_bayes([t for t, keep in zip(tags, train) if keep], labels[train],
                                 classes)
        said = joined([summarize(softmax(naive_bayes_log_scores(tags[i:i + BLOCK_CROPS],
                                                                fitted, smoothing)))
                       for i in range(0, len(tags), BLOCK_CROPS)])
        if model_path:
            pd.DataFrame(fitted.counts, index=list(fitted.tags)).to_parquet(model_path)
    else:
        raise ValueError(f"unknown correlation classifier {classifier!r}; known: {CLASSIFIERS}")
    out = predictions(crops, said, train)
    held = out[~out["trained"]]
    log.info("accuracy on the crops it did not train on: %.3f (%d)", held["correct"].mean(),
             len(held))
    write_table(out, out_path, top5=said["top5"], top5_probs=said["top5_probs"])
