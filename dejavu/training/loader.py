"""Training images onto the device, a batch at a time.

A training set small enough for `cache_mb` is read once and kept on the device (the demo's
500 images of 32 px: 1.5 MB); a larger one streams: while the model takes one step, worker
threads read and resize the next batches from the store (`data.split.SetImages`), so what
the job holds is its model and a few batches, not the set. Which images make each batch is
drawn by the training loop's seeded generator before any is read, and reading draws no
random number, so both ways give the same batches, bit for bit, and a resumed run continues
exactly. Under data parallelism each process reads only its own slice of every batch.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class LoaderConfig:
    cache_mb: int = 1024  # a set up to this size is read once and kept on the device
    workers: int = 2      # threads reading and resizing batches ahead of the step
    prefetch: int = 2     # batches read ahead, per worker


class Images(Protocol):
    """What the loop reads training images from: a set of (side, side, 3) uint8 images."""
    image_bytes: int

    def __len__(self) -> int: ...

    def read(self, positions) -> np.ndarray: ...

    def blocks(self, size: int = ...) -> Iterator[np.ndarray]: ...

    def digest(self, h) -> None:
        """Feed what identifies the images to hashlib object `h`."""


class ArrayImages:
    """An in-memory (N, H, W, 3) uint8 array as a training set (tests, benchmarks)."""

    def __init__(self, images: np.ndarray):
        self.images = np.ascontiguousarray(images)
        self.image_bytes = int(np.prod(self.images.shape[1:]))

    def __len__(self) -> int:
        return len(self.images)

    def read(self, positions) -> np.ndarray:
        return self.images[np.asarray(positions)]

    def blocks(self, size: int = 1024) -> Iterator[np.ndarray]:
        for i in range(0, len(self.images), size):
            yield self.images[i:i + size]

    def digest(self, h) -> None:
        for block in self.blocks():
            h.update(block.tobytes())


def as_images(images) -> Images:
    return ArrayImages(images) if isinstance(images, np.ndarray) else images


def set_bytes(images: Images) -> int:
    return len(images) * images.image_bytes


class Loader:
    """Batches of a training set as (n, 3, H, W) uint8 tensors on the device."""

    def __init__(self, images: Images, cfg: LoaderConfig, device: torch.device):
        self.images, self.cfg, self.device = images, cfg, device
        self.resident = None
        if set_bytes(images) <= cfg.cache_mb * 2**20:
            whole = np.concatenate(list(images.blocks())) if len(images) else \
                images.read(np.arange(0))
            self.resident = self.to_device(whole)

    def to_device(self, block: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(block).permute(0, 3, 1, 2).contiguous().to(self.device)

    def batches(self, parts: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The images at each index tensor of `parts`, in order."""
        if self.resident is not None:
            yield from (self.resident[part] for part in parts)
            return
        todo = iter(parts)
        with ThreadPoolExecutor(max(1, self.cfg.workers)) as pool:
            ahead: deque = deque()

            def read_next() -> None:
                part = next(todo, None)
                if part is not None:
                    ahead.append(pool.submit(self.images.read, part.cpu().numpy()))

            for _ in range(max(1, self.cfg.workers * self.cfg.prefetch)):
                read_next()
            while ahead:
                block = ahead.popleft().result()
                read_next()
                yield self.to_device(block)
