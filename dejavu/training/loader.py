"""Training images onto the device, a batch at a time.

A training set small enough for `cache_mb` is read once and kept on the device (the demo's
500 images of 32 px: 1.5 MB); a larger one streams: while the model takes one step, worker
threads read and resize the next batches from the store (`data.split.SetImages`), so what
the job holds is its model and a few batches, not the set. Sets stored at another size
than the model's input (ImageNet's canvases) leave resizing to the device: the workers only
decompress, and each batch goes to the device as stored and is resized there (on a GPU,
where a CPU core decompresses far faster than it resizes). Which images make each batch is
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

    @property
    def resizes_on_device(self) -> bool:
        return (hasattr(self.images, "read_stored")
                and not getattr(self.images, "stored_as_is", True))

    def read(self, positions: np.ndarray):
        """On a worker thread: a batch as stored (resized on the device) or as trained on."""
        return (self.images.read_stored(positions) if self.resizes_on_device
                else self.images.read(positions))

    def on_device(self, read) -> torch.Tensor:
        """A worker's batch as (n, 3, side, side) uint8 on the device: stored canvases are
        cut to their regions and resized there, as `SetImages.read` does on the CPU (the
        same operations: on a CPU the same bytes)."""
        if not self.resizes_on_device:
            return self.to_device(read)
        from ..core.store import square
        block, heights, widths = read
        x = square(torch.from_numpy(block).to(self.device), heights, widths, self.images.side)
        return (x * 255).round().to(torch.uint8).contiguous()

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
                    ahead.append(pool.submit(self.read, part.cpu().numpy()))

            for _ in range(max(1, self.cfg.workers * self.cfg.prefetch)):
                read_next()
            while ahead:
                block = ahead.popleft().result()
                read_next()
                yield self.on_device(block)
