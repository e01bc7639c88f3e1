"""RCDM (definitions §7): a diffusion decoder that draws an image from an SSL embedding.

The decoder is diffusers' `UNet2DModel` conditioned the way RCDM conditions it: the
embedding (backbone and projector concatenated, standardised with the public set's mean
and spread) goes through one linear map into the timestep-embedding space and is added to
the timestep embedding (the UNet's identity class embedding); every residual block then
scales and shifts its second GroupNorm with it (`resnet_time_scale_shift="scale_shift"`).
It is trained on the public set X with the DDPM noise-prediction loss and sampled with DDIM
from seeded noise, from an exponential moving average (EMA) of its weights.

Training keeps a resume state every `checkpoint_every` steps; with a fixed seed on CPU a
killed and rerun job ends with the weights of an uninterrupted one. On CUDA the UNet runs
under bf16 autocast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .models import memory_format, pick_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecoderConfig:
    resolution: int = 16                # side of the images the decoder draws
    width: int = 32                     # channels of the first UNet level
    channel_mult: tuple[int, ...] = (1, 2)  # channels of each level, as multiples of width
    layers_per_block: int = 1
    attention: bool = False             # self-attention at the lowest resolution
    timesteps: int = 1000               # diffusion steps of the noise schedule
    schedule: str = "squaredcos_cap_v2"  # diffusers beta schedule (cosine)
    steps: int = 600                    # training steps
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0
    ema: float = 0.999                  # EMA decay of the weights sampled from
    flip: bool = True                   # random horizontal flip of the target image
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 100         # steps between resume states

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.width * m for m in self.channel_mult)

    def check(self) -> None:
        levels = len(self.channel_mult)
        if self.resolution % 2 ** (levels - 1):
            raise ValueError(f"rcdm.resolution ({self.resolution}) must be divisible by "
                             f"2^{levels - 1} (rcdm.channel_mult has {levels} levels)")


def groups(width: int) -> int:
    """GroupNorm groups: 32 as in RCDM, fewer (a divisor of width) for narrow UNets."""
    return next(g for g in range(min(32, max(1, width // 4)), 0, -1) if width % g == 0)


class Decoder(nn.Module):
    """UNet2DModel + the linear map of the (standardised) conditioning embedding."""

    def __init__(self, cond_dim: int, cfg: DecoderConfig):
        super().__init__()
        from diffusers import UNet2DModel  # imported here: it takes seconds to import

        cfg.check()
        levels = len(cfg.channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if cfg.attention:  # the lowest resolution: first up block, last down block
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet = UNet2DModel(
            sample_size=cfg.resolution, in_channels=3, out_channels=3,
            block_out_channels=cfg.channels, layers_per_block=cfg.layers_per_block,
            down_block_types=tuple(down), up_block_types=tuple(up),
            norm_num_groups=groups(cfg.width), attention_head_dim=min(32, cfg.channels[-1]),
            class_embed_type="identity", resnet_time_scale_shift="scale_shift")
        time_dim = 4 * cfg.channels[0]
        self.condition = nn.Linear(cond_dim, time_dim)
        self.register_buffer("cond_mean", torch.zeros(cond_dim))
        self.register_buffer("cond_scale", torch.ones(cond_dim))
        self.cond_dim = cond_dim

    def standardise(self, cond: torch.Tensor) -> torch.Tensor:
        return (cond - self.cond_mean) / self.cond_scale

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Predicted noise of x (N, 3, r, r) in [-1, 1] at timesteps t given embeddings."""
        emb = self.condition(self.standardise(cond))
        return self.unet(x, t, class_labels=emb).sample


def schedulers(cfg: DecoderConfig):
    """(DDPM scheduler for training, DDIM scheduler for sampling) over one beta schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler

    ddpm = DDPMScheduler(num_train_timesteps=cfg.timesteps, beta_schedule=cfg.schedule,
                         clip_sample=True)
    ddim = DDIMScheduler(num_train_timesteps=cfg.timesteps, beta_schedule=cfg.schedule,
                         clip_sample=True, set_alpha_to_one=True)
    return ddpm, ddim


# ---------------------------------------------------------------- training

def run_id(images: np.ndarray, cond: np.ndarray, cfg: DecoderConfig) -> str:
    """Identifies a decoder training run: settings (not where states are kept) and data."""
    h = hashlib.sha256(repr(dataclasses.replace(cfg, checkpoint_every=0)).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(cond).tobytes())
    return h.hexdigest()


def column_stats(x: np.ndarray, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every column, accumulated in float64 by blocks of
    rows (the embeddings may be float16 and larger than memory in float32)."""
    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for i in range(0, len(x), block):
        part = np.asarray(x[i:i + block], dtype=np.float64)
        total += part.sum(0)
        squares += (part ** 2).sum(0)
    mean = total / len(x)
    var = np.maximum(squares / len(x) - mean ** 2, 0) * len(x) / max(1, len(x) - 1)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def lr_at(step: int, cfg: DecoderConfig) -> float:
    """Linear warm-up, then constant (as in guided diffusion / RCDM)."""
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))


def train_decoder(images: np.ndarray, cond: np.ndarray, cfg: DecoderConfig,
                  resume_dir: str | None = None) -> tuple[Decoder, list[float]]:
    """Train a decoder on (N, r, r, 3) uint8 images and their (N, D) embeddings; return the
    EMA decoder and the mean loss of every logged interval.

    With `resume_dir`, a state (weights, EMA, optimizer, generator, step) is kept there
    every `cfg.checkpoint_every` steps and a rerun continues from it."""
    if images.shape[1:3] != (cfg.resolution, cfg.resolution):
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]}, the decoder draws "
                         f"{cfg.resolution}x{cfg.resolution}")
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = Decoder(cond.shape[1], cfg)
    mean, scale = column_stats(cond)
    model.cond_mean.copy_(torch.from_numpy(mean))
    model.cond_scale.copy_(torch.from_numpy(scale).clamp_min(1e-6))
    fmt = memory_format(model)
    model.to(device, memory_format=fmt).train()
    ema = _ema_copy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ddpm, _ = schedulers(cfg)
    alphas = ddpm.alphas_cumprod.to(device)
    # images and embeddings stay in host memory (ImageNet's public set: gigabytes);
    # each step's batch is gathered there and moved to the device
    data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    c = torch.from_numpy(np.ascontiguousarray(cond))
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    rid = run_id(images, cond, cfg)
    state_path = Path(resume_dir, "decoder-state.pt") if resume_dir else None
    step, history = 0, []
    if state_path is not None and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state["run_id"] == rid:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"].cpu())
            step, history = state["step"], list(state["history"])
            log.info("resuming decoder training after step %d", step)
        else:
            log.info("ignoring %s: written for other settings or data", state_path)
    log_every = max(1, min(100, cfg.steps // 20))
    losses, clock, first = [], time.perf_counter(), step
    n = len(data)
    while step < cfg.steps:
        idx = torch.randint(n, (cfg.batch_size,), generator=gen, device=device).cpu()
        x0 = data[idx].to(device).float() / 127.5 - 1
        if cfg.flip:
            flip = torch.rand(len(idx), generator=gen, device=device) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        t = torch.randint(cfg.timesteps, (len(idx),), generator=gen, device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = (a.sqrt() * x0 + (1 - a).sqrt() * noise).contiguous(memory_format=fmt)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            pred = model(xt, t, c[idx].to(device).float())
        loss = (pred.float() - noise).pow(2).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"decoder loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _ema_update(ema, model, ema_decay(step, cfg.ema))
        losses.append(loss.item())
        step += 1
        if step % log_every == 0 or step == cfg.steps:
            history.append(float(np.mean(losses)))
            losses = []
            elapsed = time.perf_counter() - clock
            rate = (step - first) / elapsed
            log.info("decoder step %d/%d loss %.4f  %.0f img/s  eta %.0f s", step, cfg.steps,
                     history[-1], rate * cfg.batch_size, (cfg.steps - step) / rate)
        if state_path is not None and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            _save_state(state_path, {"model": model.state_dict(), "ema": ema.state_dict(),
                                     "optimizer": opt.state_dict(),
                                     "generator": gen.get_state(), "step": step,
                                     "history": history, "run_id": rid})
    if state_path is not None and state_path.exists():
        state_path.unlink()
    return ema.eval(), history


def _ema_copy(model: nn.Module) -> nn.Module:
    import copy
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


def ema_decay(step: int, decay: float) -> float:
    """The EMA decay at `step`: warmed up, so a short run is not dominated by its start."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)


def _save_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill never leaves half a state


def save_decoder(path: str, decoder: Decoder, cfg: DecoderConfig, **extra) -> None:
    """The decoder's weights and settings (the device is chosen again where it is loaded)."""
    torch.save({"config": dataclasses.asdict(dataclasses.replace(cfg, device="auto")),
                "cond_dim": decoder.cond_dim, "state_dict": decoder.state_dict(), **extra},
               path)


def load_decoder(path: str, device: torch.device | str = "cpu") -> tuple[Decoder, DecoderConfig,
                                                                          dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = options_config(ckpt["config"])
    decoder = Decoder(ckpt["cond_dim"], cfg)
    decoder.load_state_dict(ckpt["state_dict"])
    return decoder.to(device).eval(), cfg, ckpt


def load_decoder_of(decoder_path: str, checkpoint: str,
                    device: torch.device) -> tuple[Decoder, DecoderConfig]:
    """The decoder at `decoder_path`, if it was trained on the embeddings of `checkpoint`;
    else raise: a decoder left by another model or epoch is never used."""
    from .store import file_digest
    decoder, cfg, saved = load_decoder(decoder_path, device)
    if saved.get("checkpoint_sha256") != file_digest(checkpoint):
        raise ValueError(f"{decoder_path} was trained for another model than {checkpoint}")
    return decoder, cfg


# ---------------------------------------------------------------- sampling

def sample_seed(seed: int, key: str, sample: int) -> int:
    """The noise seed of sample `sample` of image `key`: independent of batching."""
    return zlib.crc32(f"{seed}/{key}/{sample}".encode())


@torch.no_grad()
def sample(decoder: Decoder, cfg: DecoderConfig, cond: np.ndarray, seeds: list[int],
           steps: int = 50, batch_size: int = 256,
           device: torch.device | None = None) -> np.ndarray:
    """DDIM samples (eta 0) for each row of `cond`, starting from the noise of each seed:
    (N, r, r, 3) uint8."""
    device = device or next(decoder.parameters()).device
    decoder.to(device).eval()
    _, ddim = schedulers(cfg)
    ddim.set_timesteps(steps)
    r = cfg.resolution
    out = np.empty((len(cond), r, r, 3), np.uint8)
    for start in range(0, len(cond), batch_size):
        stop = min(len(cond), start + batch_size)
        x = torch.stack([torch.randn(3, r, r, generator=torch.Generator().manual_seed(s))
                         for s in seeds[start:stop]]).to(device)
        c = torch.as_tensor(cond[start:stop], dtype=torch.float32, device=device)
        for t in ddim.timesteps:
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                eps = decoder(x, t.to(device).expand(len(x)), c).float()
            x = ddim.step(eps, t, x, eta=0.0).prev_sample
        images = ((x.clamp(-1, 1) + 1) * 127.5).round().byte()
        out[start:stop] = images.permute(0, 2, 3, 1).cpu().numpy()
    return out


# ---------------------------------------------------------------- measuring samples

def retrieval_ranks(sampled: np.ndarray, conditioning: np.ndarray) -> np.ndarray:
    """For each i: how many conditioning embeddings lie closer (L2) to the embedding of
    sample i than conditioning[i] does -- 0 when a sample is nearest its own condition;
    (N - 1) / 2 on average by chance."""
    d = torch.cdist(torch.as_tensor(sampled, dtype=torch.float64),
                    torch.as_tensor(conditioning, dtype=torch.float64))
    own = d.diagonal()[:, None]
    return (d < own).sum(1).numpy()


def mean_embeddings(neighbours: list[np.ndarray], store_rows: np.ndarray,
                    embeddings: np.ndarray) -> np.ndarray:
    """Mean embedding of each image's neighbours (dataset rows) from a store whose rows
    are `store_rows` (sorted) with `embeddings` aligned to them."""
    out = np.empty((len(neighbours), embeddings.shape[1]), np.float32)
    for i, rows in enumerate(neighbours):
        at = np.searchsorted(store_rows, rows)
        if (at >= len(store_rows)).any() or (store_rows[at] != rows).any():
            raise ValueError("a neighbour is not in the public embedding store")
        out[i] = embeddings[at].astype(np.float32).mean(0)
    return out


# ---------------------------------------------------------------- reading inputs

def conditioning(store_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, Db + Dp) concat(backbone, projector) of a finalized embedding store, in the
    store's dtype (float16 halves ImageNet's), and its source rows (sorted)."""
    import zarr
    group = zarr.open_group(store_path, mode="r")
    rows = np.asarray(group["source_row"][:])
    order = np.argsort(rows, kind="stable")
    both = np.concatenate([group["backbone"][:], group["projector"][:]], 1)
    return both[order], rows[order]


def read_set(images_path: str, split_path: str, name: str, side: int,
             rows: np.ndarray | None = None) -> np.ndarray:
    """(n, side, side, 3) uint8 images of split set `name` (or of its `rows`, sorted), with
    the embed stage's eval transform (own region, shorter side to `side`, centre)."""
    from .embed import embed_source
    from .store import read_square
    store, all_rows, sizes = embed_source(name, images_path, split_path)
    rows = all_rows if rows is None else np.asarray(rows, dtype=np.int64)
    at = np.searchsorted(all_rows, rows)
    if (at >= len(all_rows)).any() or (all_rows[np.minimum(at, len(all_rows) - 1)] != rows).any():
        raise ValueError(f"rows asked for are not all in split set {name!r}")
    canvas = store.shape[1]
    heights, widths = sizes if sizes is not None else (np.full(len(all_rows), canvas),) * 2
    out = np.empty((len(rows), side, side, 3), np.uint8)
    for i in range(0, len(rows), 1024):
        part = slice(i, i + 1024)
        x = read_square(store, rows[part], heights[at[part]], widths[at[part]], side)
        out[part] = (x * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return out


@torch.no_grad()
def embed_images(model, images: np.ndarray, side: int, device: torch.device,
                 batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(backbone, projector) of (n, r, r, 3) uint8 images resized to the model's `side`."""
    from .crops import resize_square
    fmt = memory_format(model)
    model.to(device, memory_format=fmt).eval()
    hs, zs = [], []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i:i + batch_size]).to(device).permute(0, 3, 1, 2) / 255
        if x.shape[-1] != side:
            x = resize_square(x, side).clamp(0, 1)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            h, z = model(x.contiguous(memory_format=fmt))
        hs.append(h.float().cpu().numpy())
        zs.append(z.float().cpu().numpy())
    return np.concatenate(hs), np.concatenate(zs)


# ---------------------------------------------------------------- the decoder_train stage

def options_config(options: dict) -> DecoderConfig:
    options = dict(options)
    options["channel_mult"] = tuple(options["channel_mult"])
    return DecoderConfig(**options)


def run_train(checkpoint: str, public_store: str, images_path: str, split_path: str,
              out_path: str, *, resume_dir: str | None = None, threads: int = 1,
              **options) -> None:
    """Train the decoder of one SSL model on the public set and its stored embeddings."""
    from .embeddings import check_store
    from .store import file_digest
    torch.set_num_threads(threads)
    cfg = options_config(options)
    check_store(public_store, checkpoint, "public")
    cond, rows = conditioning(public_store)
    images = read_set(images_path, split_path, "public", cfg.resolution, rows)
    log.info("training a %dx%d decoder on %d public images, conditioning of %d dims, "
             "%d steps of %d", cfg.resolution, cfg.resolution, len(images), cond.shape[1],
             cfg.steps, cfg.batch_size)
    decoder, history = train_decoder(images, cond, cfg, resume_dir)
    save_decoder(out_path, decoder.cpu(), cfg, history=history, n_images=len(images),
                 checkpoint_sha256=file_digest(checkpoint))


# ---------------------------------------------------------------- the decoder_sample stage

class Judge:
    """k-NN on the public set X in one model's embedding: the class a sample shows."""

    def __init__(self, model, store_path: str, embedding: str, k: int, labels: pd.Series,
                 side: int, device: torch.device, metric: str = "l2"):
        from .embeddings import read_embeddings
        self.public, rows = read_embeddings(store_path, embedding)
        self.labels = labels.loc[rows].to_numpy()
        self.model, self.embedding, self.k = model, embedding, k
        self.side, self.device, self.metric = side, device, metric
        self.classes = int(labels.max()) + 1

    def classify(self, images: np.ndarray) -> np.ndarray:
        return self.classify_embedded(*embed_images(self.model, images, self.side,
                                                    self.device))

    def classify_embedded(self, h: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The class of images whose (backbone, projector) embeddings are h, z."""
        from .knn import label_crops, search
        queries = z if self.embedding == "projector" else h
        dist, ids = search(self.public, queries, min(self.k, len(self.public)), self.metric,
                           str(self.device))
        return label_crops(dist, ids, self.labels, self.classes)["prediction"]


def balanced_rows(split: pd.DataFrame, name: str, n: int) -> pd.DataFrame:
    """About n rows of split set `name`, the same number from every class (lowest rows)."""
    chosen = split[split["set"] == name].sort_values("row")
    per_class = max(1, -(-n // chosen["label"].nunique()))
    return chosen.groupby("label").head(per_class).sort_values("row")


def attacked_examples(knn_target: str, knn_reference: str, subset: str, p: float,
                      examples: int) -> pd.DataFrame:
    """The attacked images of set `subset` the target ranks most confident (its top-p),
    grouped memorized (target right, reference wrong) and correlated (both right), at most
    `examples` of each, most confident first."""
    from .score import confidence_order, top_count
    t = pd.read_parquet(knn_target)
    r = pd.read_parquet(knn_reference)
    t = t[t["set"] == subset].set_index("id")
    r = r[r["set"] == subset].set_index("id")[["neighbors", "correct", "prediction"]]
    both = t.merge(r, left_index=True, right_index=True, suffixes=("", "_ref")).reset_index()
    order = confidence_order(both["confidence"].to_numpy(), both["mean_distance"].to_numpy(),
                             both["id"].to_numpy())
    top = both.iloc[order[:top_count(len(both), p)]]
    groups = {"memorized": top["correct"] & ~top["correct_ref"],
              "correlated": top["correct"] & top["correct_ref"]}
    picked = [top[mask].head(examples).assign(group=name) for name, mask in groups.items()]
    return pd.concat(picked, ignore_index=True)


def run_sample(decoders: dict[str, str], checkpoints: dict[str, str],
               public_stores: dict[str, str], knns: dict[str, str], images_path: str,
               split_path: str, crops_store: str, out_images: str, out_table: str,
               out_json: str, *, meta: dict | None = None,
               embedding: str, k: int, p: float, examples: int, samples: int,
               sample_steps: int, self_images: int, seed: int, side: int,
               metric: str = "l2", device: str = "auto", threads: int = 1) -> None:
    """Decode attacked images (both halves: set A attacked with target A, set B with target
    B) with the target's and the reference's decoder, and public test images from their own
    embedding; judge every sample's class with each model's k-NN on X. Writes a Zarr group
    (`samples`, and `crops`: the attacked crops), one table row per sample (`image`: its
    index in `samples`, `crop_image`: its crop's in `crops`), and the quality figures."""
    import zarr

    from .models import load_checkpoint
    from .store import open_images
    torch.set_num_threads(threads)
    dev = pick_device(device)
    split = pd.read_parquet(split_path)
    labels = split.drop_duplicates("row").set_index("row")["label"]
    subsets = ("A", "B")
    models = {s: load_checkpoint(checkpoints[s])[0].to(dev).eval() for s in subsets}
    decs = {s: load_decoder_of(decoders[s], checkpoints[s], dev) for s in subsets}
    judges = {s: Judge(models[s], public_stores[s], embedding, k, labels, side, dev, metric)
              for s in subsets}
    conds = {s: conditioning(public_stores[s]) for s in subsets}
    rows_out, images_out, crops_out = [], [], []
    crops = open_images(crops_store)

    def add(images: np.ndarray, **columns) -> None:
        start = sum(len(x) for x in images_out)
        images_out.append(images)
        rows_out.append(pd.DataFrame({"image": np.arange(start, start + len(images)),
                                      "crop_image": -1, **columns}))

    # the sanity path: public test images decoded from their own embedding
    chosen = balanced_rows(split, "public_test", self_images)
    originals = read_set(images_path, split_path, "public_test", side, chosen["row"].to_numpy())
    quality = {"self": {}, "attack": {}}
    for s in subsets:
        decoder, cfg = decs[s]
        h, z = embed_images(models[s], originals, side, dev)
        cond = np.concatenate([h, z], 1)
        seeds = [sample_seed(seed, f"self/{i}", 0) for i in chosen["id"]]
        drawn = sample(decoder, cfg, cond, seeds, sample_steps, device=dev)
        hs, zs = embed_images(models[s], drawn, side, dev)
        ranks = retrieval_ranks(standardised(decoder, np.concatenate([hs, zs], 1)),
                                standardised(decoder, cond))
        predicted = judges[s].classify_embedded(hs, zs)  # the samples' embeddings above
        lowres = _resize_uint8(originals, cfg.resolution)
        ceiling = judges[s].classify(lowres)
        truth = chosen["label"].to_numpy()
        n = len(chosen)
        quality["self"][s] = {
            "images": n, "top1_retrieval": float(np.mean(ranks == 0)),
            "top1_chance": 1 / n, "mean_rank": float(ranks.mean() / (n - 1)),
            "mean_rank_chance": 0.5, "class_recovery": float(np.mean(predicted == truth)),
            "class_recovery_originals": float(np.mean(ceiling == truth)),
            "class_chance": 1 / judges[s].classes}
        add(drawn, kind="self", decoder=s, half="", group="", id=chosen["id"].to_numpy(),
            row=chosen["row"].to_numpy(), label=truth, sample=0, seed=seeds, rank=ranks,
            judged_a=predicted if s == "A" else -1, judged_b=predicted if s == "B" else -1)
        log.info("self-reconstruction with decoder %s: %s", s, quality["self"][s])

    # the attack: mean embedding of each crop's k nearest public neighbours, decoded
    for target in subsets:
        reference = "B" if target == "A" else "A"
        chosen = attacked_examples(knns[target], knns[reference], target, p, examples)
        if chosen.empty:  # no memorized or correlated crop among the target's top-p
            log.info("set %s attacked: nothing to decode", target)
            continue
        first_crop = sum(len(x) for x in crops_out)
        crops_out.append(np.stack([crops[int(c)] for c in chosen["crop_row"]]))
        crop_image = np.repeat(np.arange(first_crop, first_crop + len(chosen)), samples)
        ids = np.repeat(chosen["id"].to_numpy(), samples)
        draw = np.tile(np.arange(samples), len(chosen))
        seeds = [sample_seed(seed, f"attack/{i}", j) for i, j in zip(ids, draw)]
        for role, model, column in (("target", target, "neighbors"),
                                    ("reference", reference, "neighbors_ref")):
            public, rows = conds[model]
            cond = mean_embeddings(list(chosen[column]), rows, public)
            decoder, cfg = decs[model]
            drawn = sample(decoder, cfg, np.repeat(cond, samples, axis=0), seeds,
                           sample_steps, device=dev)
            add(drawn, kind="attack", decoder=role, half=target,
                group=np.repeat(chosen["group"].to_numpy(), samples), id=ids,
                row=np.repeat(chosen["row"].to_numpy(), samples),
                label=np.repeat(chosen["label"].to_numpy(), samples), sample=draw,
                seed=seeds, rank=-1, judged_a=judges["A"].classify(drawn),
                judged_b=judges["B"].classify(drawn))
            rows_out[-1]["crop_image"] = crop_image
    table = pd.concat(rows_out, ignore_index=True)
    table["recovered"] = _recovered(table)
    attack = table[table["kind"] == "attack"]
    for group, part in attack.groupby("group"):
        by_role = part.groupby("decoder")["recovered"].mean()
        quality["attack"][group] = {"images": int(part["id"].nunique()),
                                    "target": float(by_role.get("target", np.nan)),
                                    "reference": float(by_role.get("reference", np.nan))}
    quality["settings"] = {"embedding": embedding, "k": k, "p": p, "samples": samples,
                           "sample_steps": sample_steps, "seed": seed}
    quality["run"] = meta or {}
    group = zarr.open_group(out_images, mode="w")
    crops_out = crops_out or [np.zeros((0, *crops.shape[1:]), np.uint8)]
    for name, parts in (("samples", images_out), ("crops", crops_out)):
        block = np.concatenate(parts)
        group.create_array(name, data=block, chunks=(max(1, min(256, len(block))),
                                                     *block.shape[1:]))
    table.to_parquet(out_table, index=False)
    Path(out_json).write_text(json.dumps(quality, indent=2))
    log.info("attack reconstructions: %s", quality["attack"])


@torch.no_grad()
def standardised(decoder: Decoder, embeddings: np.ndarray) -> np.ndarray:
    """Embeddings in the decoder's standardised conditioning space (where ranks are taken)."""
    x = torch.as_tensor(embeddings, dtype=torch.float32, device=decoder.cond_mean.device)
    return decoder.standardise(x).cpu().numpy()


def _recovered(table: pd.DataFrame) -> np.ndarray:
    """Share of judges that see the true class: both models for attack samples, the
    decoder's own model for self-reconstructions."""
    a = (table["judged_a"] == table["label"]).astype(float)
    b = (table["judged_b"] == table["label"]).astype(float)
    both = (table["judged_a"] >= 0) & (table["judged_b"] >= 0)
    only = np.where(table["judged_a"] >= 0, a, b)
    return np.where(both, (a + b) / 2, only)


def _resize_uint8(images: np.ndarray, side: int) -> np.ndarray:
    from .crops import resize_square
    x = torch.from_numpy(images).permute(0, 3, 1, 2) / 255
    x = resize_square(x, side).clamp(0, 1)
    return (x * 255).round().byte().permute(0, 2, 3, 1).numpy()
