"""The RCDM decoder: its model, its training loop and its DDIM sampling (the package
docstring, `dejavu.rcdm`, says what it is)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.models import memory_format, pick_device
from ..core.resume import ResumeState, drive
from ..core.optim import AdamW, Optimizer, lr_at

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


def options_config(options: dict) -> DecoderConfig:
    options = dict(options)
    options["channel_mult"] = tuple(options["channel_mult"])
    return DecoderConfig(**options)


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


def train_decoder(images: np.ndarray, cond: np.ndarray, cfg: DecoderConfig,
                  resume_dir: str | None = None,
                  deadline: float | None = None) -> tuple[Decoder, list[float]]:
    """Train a decoder on (N, r, r, 3) uint8 images and their (N, D) embeddings; return the
    EMA decoder and the mean loss of every logged interval.

    With `resume_dir`, a state (weights, EMA, optimizer, generator, step, losses) is kept
    there every `cfg.checkpoint_every` steps and a rerun continues from it. With a `deadline`
    (a `time.time()`), training stops after the first step past which another would end too
    close to it, keeps its state there and raises OutOfTime; a rerun continues to the decoder
    and loss history of one uninterrupted run (every attempt trains one step at least)."""
    if images.shape[1:3] != (cfg.resolution, cfg.resolution):
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]}, the decoder draws "
                         f"{cfg.resolution}x{cfg.resolution}")
    fit = DecoderFit.prepare(images, cond, cfg)
    resume = (ResumeState(Path(resume_dir, "decoder-state.pt"), run_id(images, cond, cfg))
              if resume_dir else None)
    drive(fit, cfg.steps, resume=resume, deadline=deadline, save_every=cfg.checkpoint_every,
          what="decoder step", device=fit.device)
    return fit.ema.eval(), fit.history


@dataclass
class DecoderFit:
    """A decoder in training: its model, EMA copy, optimizer, generator and data. Images and
    embeddings stay in host memory (ImageNet's public set: gigabytes); each step's batch is
    gathered there and moved to the device."""
    cfg: DecoderConfig
    model: Decoder
    ema: nn.Module
    opt: Optimizer
    gen: torch.Generator      # batches, flips, noise and timesteps
    alphas: torch.Tensor      # the DDPM schedule's cumulative products, on the device
    data: torch.Tensor        # (N, 3, r, r) uint8
    cond: torch.Tensor        # (N, D)
    device: torch.device
    fmt: torch.memory_format
    history: list[float] = field(default_factory=list)  # mean loss of each logged interval
    losses: list[float] = field(default_factory=list)   # the current interval's so far
    first: int = 1                                      # the first step of this call
    clock: float = field(default_factory=time.perf_counter)

    @property
    def log_every(self) -> int:
        return max(1, min(100, self.cfg.steps // 20))

    @classmethod
    def prepare(cls, images: np.ndarray, cond: np.ndarray, cfg: DecoderConfig) -> DecoderFit:
        device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        model = Decoder(cond.shape[1], cfg)
        mean, scale = column_stats(cond)
        model.cond_mean.copy_(torch.from_numpy(mean))
        model.cond_scale.copy_(torch.from_numpy(scale).clamp_min(1e-6))
        fmt = memory_format(device)
        model.to(device, memory_format=fmt).train()
        ema = _ema_copy(model)
        opt = AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        ddpm, _ = schedulers(cfg)
        alphas = ddpm.alphas_cumprod.to(device)
        data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        c = torch.from_numpy(np.ascontiguousarray(cond))
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        return cls(cfg, model, ema, opt, gen, alphas, data, c, device, fmt)

    # `core.resume.drive` runs the fit a step at a time (Resumable)
    def run_unit(self, unit: int) -> None:
        """Step `unit` (1-based), then the interval's log line when it ends one."""
        self.losses.append(self.train_step(unit - 1))
        steps = self.cfg.steps
        if unit % self.log_every == 0 or unit == steps:
            self.history.append(float(np.mean(self.losses)))
            self.losses = []
            rate = (unit - self.first + 1) / (time.perf_counter() - self.clock)
            log.info("decoder step %d/%d loss %.4f  %.0f img/s  eta %.0f s", unit, steps,
                     self.history[-1], rate * self.cfg.batch_size, (steps - unit) / rate)

    def restore(self, state: dict) -> int:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"].cpu())
        self.history, self.losses = list(state["history"]), list(state["losses"])
        self.first, self.clock = state["step"] + 1, time.perf_counter()
        return self.first

    def train_step(self, step: int) -> float:
        """One DDPM step: a random batch (flipped at random), noised to random timesteps;
        the noise-prediction loss; AdamW; the EMA update."""
        cfg, device, gen = self.cfg, self.device, self.gen
        idx = torch.randint(len(self.data), (cfg.batch_size,), generator=gen,
                            device=device).cpu()
        x0 = self.data[idx].to(device).float() / 127.5 - 1
        if cfg.flip:
            flip = torch.rand(len(idx), generator=gen, device=device) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        t = torch.randint(cfg.timesteps, (len(idx),), generator=gen, device=device)
        a = self.alphas[t].view(-1, 1, 1, 1)
        xt = (a.sqrt() * x0 + (1 - a).sqrt() * noise).contiguous(memory_format=self.fmt)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup_steps, cfg.lr, decay="constant")
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            pred = self.model(xt, t, self.cond[idx].to(device).float())
        loss = (pred.float() - noise).pow(2).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"decoder loss is {loss.item()} at step {step}")
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        _ema_update(self.ema, self.model, ema_decay(step, cfg.ema))
        return loss.item()

    def state(self, step: int) -> dict:
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.opt.state_dict(), "generator": self.gen.get_state(),
                "step": step, "history": self.history, "losses": self.losses}


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
    for averaged, live in zip(ema.parameters(), model.parameters()):
        averaged.lerp_(live, 1 - decay)


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
    from ..core.store import file_digest
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
