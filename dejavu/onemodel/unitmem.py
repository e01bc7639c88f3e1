"""UnitMem: which units of an encoder memorize single training images (Wang et al., NeurIPS
2024, "Localizing Memorization in SSL Vision Encoders"; definitions §13).

A unit is a channel of a layer (`dejavu.core.layers` names: block<i>, backbone, hidden<i>,
projector). Its activation on an image is the mean over the layer's positions (a feature
map's pixels, a Transformer's tokens) of the channel's absolute value -- the ReLU outputs of
convolutional stages are their own absolute values -- averaged over `views` augmented views
of the image (the method's training augmentation, the same seeded draws for every model).
Over a set of images, with μ_max the largest of a unit's per-image activations and μ_rest
the mean over the other images:

    UnitMem(u) = (μ_max − μ_rest) / (μ_max + μ_rest)    (0 where both are 0)

in [0, 1] for non-negative activations: near 1 when one image alone drives the unit. Both
encoders of a pair are measured on the target's training set A: target A trained on those
images, reference B did not, so the reference's distribution is what selectivity looks like
without memorization.

Streamed: per batch of images only (batch, units) activations exist; per unit a running sum,
maximum and the image that reached it are kept, so memory follows the batch size and the
layer's width, never images x units.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core import layers
from ..training.augment import AugmentConfig, apply, take
from .sslmem import draws

log = logging.getLogger(__name__)

COLUMNS = ["layer", "unit", "model", "mu_max", "mu_rest", "unitmem", "top_id"]
MODELS = {"A": "target", "B": "reference"}


def unit_activations(model: nn.Module, x: torch.Tensor, names) -> dict[str, torch.Tensor]:
    """Per layer of `names`, (N, U) float32: each unit's mean absolute activation over the
    layer's positions, from one forward pass of x (N, 3, H, W) in [0, 1]."""
    taken: dict[str, torch.Tensor] = {}

    def hook(name):
        def keep(module, inputs, output):
            taken[name] = magnitude(output)
        return keep

    handles = [module.register_forward_hook(hook(name))
               for name, module in model.layer_modules(layers.inner(names)).items()]
    try:
        outputs = model(x)
    finally:
        for handle in handles:
            handle.remove()
    taken.update((name, magnitude(out)) for name, out in zip(layers.OUTPUTS, outputs))
    return {name: taken[name] for name in names}


def magnitude(output: torch.Tensor) -> torch.Tensor:
    """(N, U): |activation| averaged over a feature map's pixels (N, U, H, W) or a token
    sequence's tokens (N, T, U)."""
    a = output.detach().float().abs()
    if a.dim() == 4:
        return a.mean(dim=(2, 3))
    if a.dim() == 3:
        return a.mean(dim=1)
    return a


class Tally:
    """One model's running per-unit statistics over the images seen so far, per layer."""

    def __init__(self):
        self.n = 0
        self.sum: dict[str, np.ndarray] = {}
        self.max: dict[str, np.ndarray] = {}
        self.top: dict[str, np.ndarray] = {}

    def add(self, name: str, acts: np.ndarray, ids: np.ndarray) -> None:
        """acts (n, U) float64 per-image activations of layer `name`, ids (n,)."""
        best = acts.argmax(axis=0)
        batch_max = acts[best, np.arange(acts.shape[1])]
        if name not in self.sum:
            self.sum[name] = acts.sum(axis=0)
            self.max[name], self.top[name] = batch_max, ids[best]
            return
        self.sum[name] += acts.sum(axis=0)
        higher = batch_max > self.max[name]  # ties: the image seen first
        self.max[name] = np.where(higher, batch_max, self.max[name])
        self.top[name] = np.where(higher, ids[best], self.top[name])

    def table(self, model: str) -> pd.DataFrame:
        rows = []
        for name in self.sum:
            mu_max = self.max[name]
            mu_rest = (self.sum[name] - mu_max) / max(self.n - 1, 1)
            rows.append(pd.DataFrame({
                "layer": name, "unit": np.arange(len(mu_max)), "model": model,
                "mu_max": mu_max, "mu_rest": mu_rest,
                "unitmem": selectivity(mu_max, mu_rest), "top_id": self.top[name]}))
        return pd.concat(rows, ignore_index=True)[COLUMNS]


def selectivity(mu_max: np.ndarray, mu_rest: np.ndarray) -> np.ndarray:
    """(μ_max − μ_rest) / (μ_max + μ_rest), 0 where the unit never fires."""
    total = mu_max + mu_rest
    return np.divide(mu_max - mu_rest, total, out=np.zeros_like(total), where=total > 0)


@torch.inference_mode()
def measure(models: dict[str, nn.Module], images, ids: np.ndarray, names, *, view,
            views: int, seed: int, device, batch_size: int) -> pd.DataFrame:
    """UnitMem of every unit of layers `names` of each model (`models`: {"A": target,
    "B": reference}) over `images` (N, S, S, 3) uint8, sliced a batch at a time."""
    for name in names:
        layers.parse(name)
    device, n = torch.device(device), len(images)
    if n < 2:
        raise ValueError(f"UnitMem needs at least 2 images, got {n}")
    for model in models.values():
        model.to(device).eval()
    params = draws(n, view, views, seed)
    tallies = {key: Tally() for key in models}
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        batch = images.read(np.arange(rows.start, rows.stop)) if hasattr(images, "read") \
            else np.asarray(images[rows])
        x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2)
        x = x.float() / 255
        sums = {key: {} for key in models}
        for p in params:  # one view at a time: memory is a batch's, whatever `views`
            v = apply(x, {k: t.to(device) for k, t in take(p, rows).items()}, view)
            for key, model in models.items():
                for name, acts in unit_activations(model, v, names).items():
                    acts = acts.double().cpu().numpy()
                    sums[key][name] = sums[key].get(name, 0) + acts
        for key, tally in tallies.items():
            for name, total in sums[key].items():
                tally.add(name, total / views, ids[rows])
            tally.n += rows.stop - rows.start
    return pd.concat([tallies[key].table(MODELS[key]) for key in models], ignore_index=True)


def run(checkpoint_a: str, checkpoint_b: str, images_path: str, split_path: str,
        out_path: str, *, side: int, names, views: int = 10, seed: int = 0,
        augment: dict | None = None, device: str = "auto", batch_size: int = 256,
        threads: int = 1) -> None:
    """The unitmem stage: UnitMem of target A and reference B on set A's images."""
    from ..core.models import load_checkpoint, pick_device
    from ..data.split import SetImages
    torch.set_num_threads(threads)
    models = {"A": load_checkpoint(checkpoint_a)[0], "B": load_checkpoint(checkpoint_b)[0]}
    images = SetImages(images_path, split_path, "A", side)
    split = pd.read_parquet(split_path, columns=["id", "row", "set"])
    ids = split[split["set"] == "A"].set_index("row").loc[images.rows, "id"].to_numpy()
    view = AugmentConfig.from_options(augment or {}).view(0)
    log.info("UnitMem of layers %s on the %d images of set A, %d views each", list(names),
             len(images), views)
    table = measure(models, images, ids, list(names), view=view, views=views, seed=seed,
                    device=pick_device(device), batch_size=batch_size)
    table.to_parquet(out_path, index=False)
    means = table.groupby(["layer", "model"])["unitmem"].mean().round(4).to_dict()
    log.info("mean UnitMem per layer and model: %s", means)
