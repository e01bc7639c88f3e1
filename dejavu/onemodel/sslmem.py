"""SSLMem, the per-sample memorization score of Wang et al., "Memorization in Self-Supervised
Learning Improves Downstream Generalization" (ICLR 2024), as definitions §6 defines it.

For an encoder f with L2-normalised representation f̂, an image x is scored by how far its
augmented views land from it:

    d_f(x) = mean over n draws of ‖f̂(x) − f̂(aug(x))‖₂

and its memorization by the target model T (trained on x) against the reference model R (not):

    m(x) = d_R(x) − d_T(x)

reported raw and divided by (max − min) over the scored set. Positive m: T keeps x's views
closer together than a model that never saw x does.

Both models see the same augmentation draws (common random numbers: the draws' noise cancels
in m), and each draw is made for all images at once, on the CPU, so a score does not depend
on the batch size or the device.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..core import layers
from ..core.vit import visible_patches
from ..training.augment import AugmentConfig, ViewAugment, apply, sample, take
from .sslmem_summary import summarize

log = logging.getLogger(__name__)

SCORED_SETS = ("A", "B", "heldout")
COLUMNS = ["id", "set", "label", "target", "d_target", "d_reference", "m", "m_norm"]


# ---------------------------------------------------------------- distances d_f(x)

def draw_seed(seed: int, draw: int) -> int:
    """The seed of augmentation draw `draw`: an independent stream per (seed, draw)."""
    return int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])


def draws(n: int, view: ViewAugment, n_views: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Each draw's augmentation parameters for all n images. Drawn on the CPU, so they are
    the same whatever the device; sliced per batch later, so whatever the batch size."""
    cpu = torch.device("cpu")
    return [sample(n, view, torch.Generator(cpu).manual_seed(draw_seed(seed, j)), cpu)
            for j in range(n_views)]


def represent(model: nn.Module, x: torch.Tensor, embeddings,
              visible: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Each of `embeddings` of x (N, 3, H, W) in [0, 1], (N, D) L2-normalised: the model's
    outputs or its intermediate layers (dejavu.core.layers), from one forward pass; a ViT
    seeing only the patches `visible` (N, K) when given. For the outputs of whole images any
    module returning (backbone, projector) will do."""
    if set(embeddings) <= set(layers.OUTPUTS):
        out = dict(zip(layers.OUTPUTS, model(x) if visible is None else model(x, visible)))
    else:
        out = model.embed(x, embeddings, visible)
    return {name: F.normalize(out[name].float(), dim=1) for name in embeddings}


@torch.inference_mode()
def _per_view(models: dict[str, nn.Module], images: Images, view: ViewAugment,
              n_views: int, seed: int, device, batch_size: int,
              embeddings) -> dict[str, dict[str, np.ndarray]]:
    """Per embedding, each model's (n_views, N) distances, all models and embeddings on the
    same draws; the images are sliced a batch at a time (an array, or images read from the
    store when sliced)."""
    for embedding in embeddings:
        layers.parse(embedding)  # a known name, or ValueError
    device, n = torch.device(device), len(images)
    out = {e: {name: np.zeros((n_views, n), np.float32) for name in models}
           for e in embeddings}
    if n == 0:
        return out
    for model in models.values():
        model.to(device).eval()  # BatchNorm on running statistics: no batch effects
    params = draws(n, view, n_views, seed)
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        batch = images[rows]
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != 3:
            raise ValueError(f"images must be (N, S, S, 3) uint8, not {batch.shape} "
                             f"{batch.dtype}")
        x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float() / 255
        drawn = [{k: v.to(device) for k, v in take(p, rows).items()} for p in params]
        views = [apply(x, p, view) for p in drawn]
        masks = [visible_patches(p["mask_noise"], view.mask_ratio) if view.mask_ratio else None
                 for p in drawn]
        for name, model in models.items():
            original = represent(model, x, embeddings)
            for j, v in enumerate(views):
                seen = represent(model, v, embeddings, masks[j])
                for e in embeddings:
                    out[e][name][j, rows] = (original[e] - seen[e]).norm(dim=1).cpu().numpy()
    return out


def view_distances(model: nn.Module, images: np.ndarray, view: ViewAugment, n_views: int,
                   seed: int, device="cpu", batch_size: int = 256,
                   embedding: str = "backbone") -> np.ndarray:
    """(n_views, N) ‖f̂(x) − f̂(aug_j(x))‖₂ of (N, S, S, 3) uint8 images, in float32; the
    model is moved to `device` and put in eval mode."""
    return _per_view({"f": model}, images, view, n_views, seed, device, batch_size,
                     [embedding])[embedding]["f"]


def distances(models: dict[str, nn.Module], images: Images, view: ViewAugment,
              n_views: int, seed: int, device="cpu", batch_size: int = 256,
              embeddings=("backbone",)) -> dict[str, dict[str, np.ndarray]]:
    """Per embedding, each model's (N,) d_f: the mean of `view_distances` over the draws,
    the draws shared by all models and embeddings."""
    per_view = _per_view(models, images, view, n_views, seed, device, batch_size,
                         embeddings)
    return {e: {name: d.mean(0) for name, d in by_model.items()}
            for e, by_model in per_view.items()}


# ---------------------------------------------------------------- m(x) and its table

def memorization(d_target: np.ndarray, d_reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """m = d_R − d_T (float64), and m / (max − min) over the given images (0 where m is
    constant)."""
    m = np.asarray(d_reference, np.float64) - np.asarray(d_target, np.float64)
    spread = float(m.max() - m.min()) if len(m) else 0.0
    return m, (m / spread if spread > 0 else np.zeros_like(m))


def scored_rows(split: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per set, the split rows SSLMem scores, sorted by id: the attacked images of A and B
    (not their box-less top-ups, which the k-NN attack does not score either) and the
    held-out set."""
    keep = split["attacked"] | (split["set"] == "heldout")
    return {name: split[keep & (split["set"] == name)].sort_values("id", kind="stable")
            .reset_index(drop=True) for name in SCORED_SETS}


def heldout_targets(ids: np.ndarray) -> np.ndarray:
    """"A" or "B" per held-out image: sorted by id, even positions are scored with target A,
    odd ones with target B, as the held-out control of `score.heldout_halves` attacks them."""
    order = np.argsort(np.asarray(ids), kind="stable")
    targets = np.empty(len(order), dtype=object)
    targets[order[0::2]], targets[order[1::2]] = "A", "B"
    return targets


def score_table(split: pd.DataFrame, images: dict[str, Images],
                models: dict[str, nn.Module], *, view: ViewAugment, n_views: int = 5,
                seed: int = 0, device="cpu", batch_size: int = 256,
                embedding: str = "backbone", split_heldout: bool = True) -> pd.DataFrame:
    """`score_tables` of one embedding."""
    return score_tables(split, images, models, view=view, n_views=n_views, seed=seed,
                        device=device, batch_size=batch_size, embeddings=[embedding],
                        split_heldout=split_heldout)[embedding]


def score_tables(split: pd.DataFrame, images: dict[str, Images],
                 models: dict[str, nn.Module], *, view: ViewAugment, n_views: int = 5,
                 seed: int = 0, device="cpu", batch_size: int = 256,
                 embeddings=("backbone",), split_heldout: bool = True) -> dict[str, pd.DataFrame]:
    """One row per scored image (COLUMNS). `images[name]`: (n, S, S, 3) uint8 in the order of
    `scored_rows(split)[name]`, an array or `read_scored`'s readers; `models`: {"A": ...,
    "B": ...}.

    Set A is scored with target A and reference B, set B the other way round; held-out
    images alternate (`heldout_targets`), or with split_heldout=False get one row per
    direction. m_norm is normalised over the whole table. One table per embedding of
    `embeddings` (along depth: LayerMem, definitions §11), all from the same passes."""
    scored = scored_rows(split)
    for name, rows in scored.items():
        if len(images[name]) != len(rows):
            raise ValueError(f"{len(images[name])} images given for set {name}, which has "
                             f"{len(rows)} scored images")
    by_embedding = distances(models, Chain([images[name] for name in SCORED_SETS]), view,
                             n_views, seed, device, batch_size, embeddings)
    base = pd.concat(scored.values(), ignore_index=True)[["id", "set", "label"]]
    return {e: _table(base, d, split_heldout) for e, d in by_embedding.items()}


def _table(base: pd.DataFrame, d: dict[str, np.ndarray], split_heldout: bool) -> pd.DataFrame:
    """The score table of one embedding from both models' distances."""
    table = base.copy()
    table["d_A"], table["d_B"] = d["A"], d["B"]
    train = table[table["set"] != "heldout"].assign(target=lambda t: t["set"])
    heldout = table[table["set"] == "heldout"]
    if split_heldout:
        heldout = [heldout.assign(target=heldout_targets(heldout["id"].to_numpy()))]
    else:
        heldout = [heldout.assign(target="A"), heldout.assign(target="B")]
    table = pd.concat([train, *heldout], ignore_index=True)
    is_a = (table["target"] == "A").to_numpy()
    table["d_target"] = np.where(is_a, table["d_A"], table["d_B"])
    table["d_reference"] = np.where(is_a, table["d_B"], table["d_A"])
    table["m"], table["m_norm"] = memorization(table["d_target"], table["d_reference"])
    return table[COLUMNS]


# ---------------------------------------------------------------- the sslmem stage

def read_scored(images_path: str, split_path: str, side: int) -> dict[str, Images]:
    """Per scored set, its images (n, side, side, 3) uint8 in `scored_rows` order, read from
    the store as training reads them (`data.split.SetImages`: own region, shorter side to
    `side`, centre) when a batch is sliced: the stage holds batches, not the sets."""
    from ..data.split import SetImages
    split = pd.read_parquet(split_path)
    out = {}
    for name, rows in scored_rows(split).items():
        if len(rows) == 0:
            out[name] = np.empty((0, side, side, 3), np.uint8)
            continue
        images = SetImages(images_path, split_path, name, side)
        out[name] = InOrder(images, np.searchsorted(images.rows, rows["row"].to_numpy()))
    return out


class Images(Protocol):
    """(n, S, S, 3) uint8 images, sliced a batch at a time (`images[a:b]`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, rows: slice) -> np.ndarray: ...


class InOrder:
    """The images of a set at `positions`, in that order, read when sliced."""

    def __init__(self, images, positions: np.ndarray):
        self.images, self.positions = images, np.asarray(positions, np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.images.read(self.positions[rows])


class Chain:
    """Image sequences one after another, sliced as one."""

    def __init__(self, parts: list[Images]):
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, rows: slice) -> np.ndarray:
        blocks = [part[max(rows.start - lo, 0):rows.stop - lo]
                  for part, lo, hi in zip(self.parts, self.starts, self.starts[1:])
                  if rows.start < hi and rows.stop > lo]
        return np.concatenate(blocks)


def run(checkpoint_a: str, checkpoint_b: str, images_path: str, split_path: str,
        out_path: str, *, side: int, n_views: int = 5, seed: int = 0,
        embedding: str = "backbone", augment: dict | None = None, device: str = "auto",
        batch_size: int = 256, split_heldout: bool = True, threads: int = 1,
        along_depth=(), out_layers: str | None = None, mask_ratio: float = 0.0) -> None:
    """The sslmem stage: score models A and B on the attacked images of A and B and on the
    held-out set, with the first view of the training augmentation (`augment`: the config's
    overrides of AugmentConfig; `mask_ratio`: the share of a ViT's patches its training
    views hide, for a masked autoencoder), and write the `score_table` of `embedding`.
    With `out_layers`: the `summarize` of every embedding of `along_depth` too, one row
    each (LayerMem, definitions §11), from the same passes."""
    from ..core.models import load_checkpoint, pick_device
    torch.set_num_threads(threads)
    models = {"A": load_checkpoint(checkpoint_a)[0], "B": load_checkpoint(checkpoint_b)[0]}
    patches = getattr(models["A"].backbone, "grid", 0) ** 2
    view = AugmentConfig.from_options(augment or {}).view(0, mask_ratio=mask_ratio,
                                                          mask_patches=patches)
    images = read_scored(images_path, split_path, side)
    log.info("SSLMem on %s images, %d draws, %s embedding, views hiding %.0f %% of the "
             "patches", {k: len(v) for k, v in images.items()}, n_views, embedding,
             100 * mask_ratio)
    embeddings = sorted({embedding, *along_depth}, key=layers.depth)
    tables = score_tables(pd.read_parquet(split_path), images, models, view=view,
                          n_views=n_views, seed=seed, device=pick_device(device),
                          batch_size=batch_size, embeddings=embeddings,
                          split_heldout=split_heldout)
    table = tables[embedding]
    table.to_parquet(out_path, index=False)
    if out_layers is not None:
        pd.DataFrame([{"embedding": e, **summarize(t)} for e, t in tables.items()
                      if e in along_depth]).to_parquet(out_layers, index=False)
    summary = summarize(table)
    log.info("mean m: training %s, held-out %s; AUC training vs held-out %s",
             *(_fmt(summary[k]) for k in ("mean_m_train", "mean_m_heldout",
                                          "auc_train_heldout")))


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.4f}"
