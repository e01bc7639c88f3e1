"""Data-parallel training helpers: one process per device, each with a slice of the batch.

The SSL losses and BatchNorm layers use batch statistics, so a data-parallel run equals a
single-process run with the whole batch only when they see the *global* batch. `gather`
concatenates every process's embeddings (keeping gradients), `GlobalBatchNorm` computes
BatchNorm statistics over all processes. With one process both are the identity, so there
is one code path; they work over gloo (CPU) and NCCL (CUDA) alike.
"""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def from_rank0(compute):
    """compute() on rank 0, its result handed to every process (picklable results): work
    that would give every rank the same answer, done once."""
    rank, size = world()
    if size == 1:
        return compute()
    result = [compute() if rank == 0 else None]
    dist.broadcast_object_list(result, src=0)
    return result[0]


def split_sizes(n: int, parts: int) -> list[int]:
    """Sizes of `torch.tensor_split` of n rows into `parts` (the first ones one larger)."""
    return [n // parts + (i < n % parts) for i in range(parts)]


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        rank, size = world()
        ctx.rank, ctx.sizes = rank, sizes
        longest = max(sizes)
        padded = F.pad(x, (0, 0, 0, longest - len(x)))
        parts = [torch.empty_like(padded) for _ in range(size)]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # every process computed the same loss from the gathered batch: sum their
        # gradients and keep the rows of this process
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate (n_r, D) rows of every process in rank order; identity with one process.

    Gradients flow back to each process's own rows. Every process then holds the whole
    batch's loss, and the data-parallel average of the parameter gradients equals the
    gradient of that loss (the world size cancels between the sum here and the average)."""
    rank, size = world()
    if size == 1:
        return x
    sizes = torch.tensor([len(x)], device=x.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(size)]
    dist.all_gather(all_sizes, sizes)
    return _Gather.apply(x, [int(s) for s in all_sizes])


class _SumOverProcesses(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are taken over every process's batch (a
    synchronised BatchNorm that also runs on CPU). Weights and running statistics are those
    of the BatchNorm it replaces."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, size = world()
        if not self.training or size == 1:
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=x.dtype)
        stats = _SumOverProcesses.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp(min=0)
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def globalise_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of `module` by a GlobalBatchNorm holding its state."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            new.load_state_dict(child.state_dict())
            if child.affine:
                new.requires_grad_(child.weight.requires_grad)
            new.to(next(iter(child.state_dict().values())).device)
            setattr(module, name, new)
        else:
            globalise_batchnorm(child)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(rank: int, size: int, port: int, device: torch.device) -> None:
    """Join the process group of a job's data-parallel processes (all on this node)."""
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=size)
