"""Optimizers and the one learning-rate schedule of every training loop (SSL training, the
correlation classifiers, the RCDM decoders).

LARS (You, Gitman, Ginsburg, *Large Batch Training of Convolutional Networks*, 2017) as the
SSL papers use it: SGD with momentum whose update of each weight matrix is rescaled by the
trust ratio eta * ||w|| / ||g + wd w||; biases and normalisation parameters (1-D) get
neither weight decay nor the rescaling.
"""

from __future__ import annotations

import math

import torch


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001):
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "weight_decay": weight_decay, "eta": eta})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.ndim > 1:  # weight matrices and kernels only
                    g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.norm(p), torch.linalg.norm(g)
                    trust = torch.where((w_norm > 0) & (g_norm > 0),
                                        group["eta"] * w_norm / g_norm, torch.ones_like(w_norm))
                    g = g * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])


def make_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float = 0.9,
                   eta: float = 0.001) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: adamw, lars, sgd")


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float,
          final_fraction: float = 0.0, decay: str = "cosine") -> float:
    """Linear warm-up to base_lr, then cosine decay to final_fraction * base_lr, or (decay
    "constant", as guided diffusion and RCDM train) base_lr to the end. The two warm-ups
    are the same ramp written as each loop always computed it, to the last bit."""
    if decay == "constant":
        return base_lr * min(1.0, (step + 1) / max(1, warmup_steps))
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    low = final_fraction * base_lr
    return low + (base_lr - low) * 0.5 * (1 + math.cos(math.pi * t))
