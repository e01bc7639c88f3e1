"""Optimizers and the one learning-rate schedule of every training loop (SSL training, the
correlation classifiers, the RCDM decoders).

AdamW and SGD are torch's own updates, through torch's public functional API
(`torch.optim.adamw.adamw`, `torch.optim.sgd.sgd`) with the state kept here rather than in
`torch.optim`'s classes: those import `torch._dynamo` the first time they are used (their
methods are wrapped so that the compiler skips them), 2.3 CPU-s per process on the 2-core
reference machine, more than all the work of most of the workflow's small jobs; the
functions do not (`python bench/optimizer_import.py`). They pick torch's implementation as
its classes do (grouped foreach kernels on a GPU, one tensor at a time on a CPU), so the
weights are torch's bit for bit (tests/test_optim.py).

LARS (You, Gitman, Ginsburg, *Large Batch Training of Convolutional Networks*, 2017) as the
SSL papers use it: SGD with momentum whose update of each weight matrix is rescaled by the
trust ratio eta * ||w|| / ||g + wd w||; biases and normalisation parameters (1-D) get
neither weight decay nor the rescaling.
"""

from __future__ import annotations

import math

import torch
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd


class Optimizer:
    """One group of parameters and their state, as the training loops use an optimizer:
    they set `param_groups[0]["lr"]` before each `step()`. `state_dict()` has torch's layout
    (per-parameter state by position, then the group's settings), so states saved by
    torch's AdamW and SGD load here too."""

    def __init__(self, params, **settings):
        self.param_groups = [{"params": list(params), **settings}]
        self.state: dict[torch.nn.Parameter, dict] = {}

    def with_grads(self) -> tuple[dict, list[torch.Tensor], list[torch.Tensor]]:
        """The group and those of its parameters that have a gradient, with their grads."""
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        return group, params, [p.grad for p in params]

    def zero_grad(self) -> None:
        """Drop the gradients (torch's default, set_to_none): the next backward makes them."""
        for p in self.param_groups[0]["params"]:
            p.grad = None

    def momentum_buffer(self, p: torch.Tensor, grad: torch.Tensor,
                        momentum: float) -> torch.Tensor:
        """The parameter's momentum buffer, updated with `grad` (its first gradient, first)."""
        state = self.state.setdefault(p, {})
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = grad.clone().detach()
        else:
            state["momentum_buffer"].mul_(momentum).add_(grad)
        return state["momentum_buffer"]

    def state_dict(self) -> dict:
        group = self.param_groups[0]
        index = {p: i for i, p in enumerate(group["params"])}
        settings = {k: v for k, v in group.items() if k != "params"}
        return {"state": {index[p]: dict(s) for p, s in self.state.items()},
                "param_groups": [{**settings, "params": list(range(len(group["params"])))}]}

    def load_state_dict(self, state: dict) -> None:
        (saved,) = state["param_groups"]
        group = self.param_groups[0]
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(f"the saved optimizer state holds {len(saved['params'])} "
                             f"parameters, this model {len(group['params'])}")
        group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, s in state["state"].items():
            p = group["params"][int(i)]
            self.state[p] = {k: v if k == "step" else v.to(p.device, p.dtype)
                             for k, v in s.items()}


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov and Hutter, ICLR 2019), torch's AdamW
    with its defaults (betas 0.9 / 0.999, eps 1e-8, no amsgrad)."""

    def __init__(self, params, lr: float, weight_decay: float = 0.01,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self) -> None:
        group, params, grads = self.with_grads()
        if not params:
            return
        for p in params:
            if p not in self.state:  # the step count lives on the CPU, as torch keeps it
                self.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p),
                                 "exp_avg_sq": torch.zeros_like(p)}
        states = [self.state[p] for p in params]
        beta1, beta2 = group["betas"]
        adamw(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
              [], [s["step"] for s in states], amsgrad=False, beta1=beta1, beta2=beta2,
              lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
              maximize=False)


class SGD(Optimizer):
    """SGD with momentum and weight decay added to the gradient (torch's SGD, no dampening
    or Nesterov)."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self) -> None:
        group, params, grads = self.with_grads()
        if not params:
            return
        buffers = [self.state.get(p, {}).get("momentum_buffer") for p in params]
        sgd(params, grads, buffers, weight_decay=group["weight_decay"],
            momentum=group["momentum"], lr=group["lr"], dampening=0.0, nesterov=False,
            maximize=False)
        if group["momentum"] != 0:  # the buffers it made for the first step
            for p, buffer in zip(params, buffers):
                self.state.setdefault(p, {})["momentum_buffer"] = buffer


class LARS(Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)

    @torch.no_grad()
    def step(self) -> None:
        group, params, grads = self.with_grads()
        for p, g in zip(params, grads):
            if p.ndim > 1:  # weight matrices and kernels only
                g = g.add(p, alpha=group["weight_decay"])
                w_norm, g_norm = torch.linalg.norm(p), torch.linalg.norm(g)
                trust = torch.where((w_norm > 0) & (g_norm > 0),
                                    group["eta"] * w_norm / g_norm, torch.ones_like(w_norm))
                g = g * trust
            p.add_(self.momentum_buffer(p, g, group["momentum"]), alpha=-group["lr"])


OPTIMIZERS = ("adamw", "lars", "sgd")  # train.optimizer


def make_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float = 0.9,
                   eta: float = 0.001) -> Optimizer:
    params = [p for p in params if p.requires_grad]
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


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
