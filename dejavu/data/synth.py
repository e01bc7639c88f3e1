"""The built-in synthetic benchmark (definitions §8).

Every image is a textured *scene* (background) with one class-specific *object* on top and a
few per-image *details* (small discs and squares) that a model can memorize. The scene is
correlated with the class -- with probability `correlation` an image uses its class's
preferred scene, otherwise a uniformly drawn one -- so a background crop predicts the class
above chance even for a model that never saw the image. That is the correlation the
reference model measures; the gap above it is déjà vu memorization.

Everything is drawn from one `numpy.random.Generator`, so a seed fixes the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

N_SCENES = 10
N_SHAPES = 10


@dataclass(frozen=True)
class SynthConfig:
    n_classes: int = 10
    images_per_class: int = 700
    image_size: int = 32
    correlation: float = 0.5
    n_details: int = 5
    detail_min_frac: float = 0.08   # radius (or half side) of a detail, fraction of the side
    detail_max_frac: float = 0.16
    object_min_frac: float = 0.3
    object_max_frac: float = 0.5
    noise_std: float = 0.03
    seed: int = 0


# ---------------------------------------------------------------- scenes (float images in [0, 1])

def scene_palette(rng: np.random.Generator, n_scenes: int = N_SCENES) -> dict[str, np.ndarray]:
    """Two colours and a spatial frequency per scene type; fixed for the whole benchmark."""
    return {
        "colour_a": rng.uniform(0.0, 1.0, size=(n_scenes, 3)),
        "colour_b": rng.uniform(0.0, 1.0, size=(n_scenes, 3)),
        "frequency": rng.uniform(1.5, 4.0, size=n_scenes),
    }


def scene_pattern(kind: int, size: int, frequency: float, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) pattern in [0, 1] for scene type `kind`, with a random phase/centre."""
    v, u = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 2 * np.pi)
    wave = lambda t: 0.5 + 0.5 * np.sin(2 * np.pi * frequency * t + phase)  # noqa: E731
    cx, cy = rng.uniform(0.2, 0.8, size=2)
    match kind % N_SCENES:
        case 0:  # horizontal stripes
            t = wave(v)
        case 1:  # vertical stripes
            t = wave(u)
        case 2:  # diagonal stripes
            t = wave((u + v) / np.sqrt(2))
        case 3:  # checker
            t = (np.sin(2 * np.pi * frequency * (u - cx))
                 * np.sin(2 * np.pi * frequency * (v - cy)) > 0)
        case 4:  # rings around a random centre
            t = wave(np.hypot(u - cx, v - cy))
        case 5:  # linear gradient along a random direction
            angle = rng.uniform(0, 2 * np.pi)
            t = (np.cos(angle) * (u - 0.5) + np.sin(angle) * (v - 0.5)) / np.sqrt(2) + 0.5
        case 6:  # smooth noise: a coarse random grid, upsampled bilinearly
            t = _smooth_noise(size, cells=max(2, int(round(frequency))), rng=rng)
        case 7:  # plaid
            t = 0.5 * wave(u) + 0.5 * (0.5 + 0.5 * np.sin(2 * np.pi * frequency * v + 2 * phase))
        case 8:  # anti-diagonal stripes, finer
            t = wave(2 * (u - v) / np.sqrt(2))
        case _:  # wavy stripes
            t = wave(v + 0.1 * np.sin(2 * np.pi * 2 * u + phase))
    return np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)


def _smooth_noise(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    grid = rng.uniform(0, 1, size=(cells + 1, cells + 1))
    pos = np.linspace(0, cells, size, endpoint=False)
    i = np.floor(pos).astype(int)
    f = pos - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


# ---------------------------------------------------------------- objects

def shape_mask(shape: int, side: int) -> np.ndarray:
    """Boolean (side, side) mask of class shape `shape`. The box is taken from the set pixels
    (`mask_box`), so it is exact even where rounding shaves a shape's edge."""
    y, x = (np.mgrid[0:side, 0:side] + 0.5) / side  # pixel centres in (0, 1)
    t = 0.28  # stroke width of the line shapes, as a fraction of the side
    match shape % N_SHAPES:
        case 0:  # filled square
            m = np.ones((side, side), bool)
        case 1:  # disc
            m = np.hypot(x - 0.5, y - 0.5) <= 0.5
        case 2:  # triangle, apex up
            m = np.abs(x - 0.5) <= 0.5 * y + 0.5 / side
        case 3:  # plus
            m = (np.abs(x - 0.5) < t / 2 + 0.01) | (np.abs(y - 0.5) < t / 2 + 0.01)
        case 4:  # diamond
            m = np.abs(x - 0.5) + np.abs(y - 0.5) <= 0.5
        case 5:  # ring
            r = np.hypot(x - 0.5, y - 0.5)
            m = (r <= 0.5) & (r >= 0.5 - t)
        case 6:  # letter H
            m = (x < t) | (x > 1 - t) | (np.abs(y - 0.5) < t / 2)
        case 7:  # letter T
            m = (y < t) | (np.abs(x - 0.5) < t / 2)
        case 8:  # X
            m = (np.abs(x - y) < t / 1.5) | (np.abs(x + y - 1) < t / 1.5)
        case _:  # letter L
            m = (x < t) | (y > 1 - t)
    return np.asarray(m, bool)


def mask_box(mask: np.ndarray, x0: int, y0: int) -> tuple[int, int, int, int]:
    """Half-open pixel box [x0, x1) x [y0, y1) of the mask's set pixels, offset by (x0, y0)."""
    ys, xs = np.nonzero(mask)
    return int(x0 + xs.min()), int(y0 + ys.min()), int(x0 + xs.max() + 1), int(y0 + ys.max() + 1)


def class_colours(n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Saturated, well separated object colours: evenly spaced hues."""
    hues = (np.arange(n_classes) / n_classes + rng.uniform(0, 1)) % 1.0
    return np.stack([_hue_to_rgb(h) for h in hues])


def _hue_to_rgb(h: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return 1 - np.clip(np.minimum(k, 4 - k), 0, 1)


# ---------------------------------------------------------------- one image

def render_image(label: int, scene: int, palette: dict[str, np.ndarray], colours: np.ndarray,
                 cfg: SynthConfig, rng: np.random.Generator):
    """One image: uint8 (H, W, 3), its object box (x0, y0, x1, y1, half-open pixels) and its
    details (`_draw_details`)."""
    s = cfg.image_size
    t = scene_pattern(scene, s, palette["frequency"][scene], rng)[..., None]
    img = (1 - t) * palette["colour_a"][scene] + t * palette["colour_b"][scene]
    details = _draw_details(img, cfg.n_details, cfg.detail_min_frac, cfg.detail_max_frac, rng)
    side = int(rng.integers(round(cfg.object_min_frac * s), round(cfg.object_max_frac * s) + 1))
    x0, y0 = (int(v) for v in rng.integers(0, s - side + 1, size=2))
    mask = shape_mask(label, side)
    colour = np.clip(colours[label] + rng.normal(0, 0.04, size=3), 0, 1)
    img[y0:y0 + side, x0:x0 + side][mask] = colour
    img += rng.normal(0, cfg.noise_std, size=img.shape)
    image = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return image, mask_box(mask, x0, y0), details


def _draw_details(img: np.ndarray, n: int, min_frac: float, max_frac: float,
                  rng: np.random.Generator) -> list[list[float]]:
    """Per-image unique detail: n random-coloured discs or squares at random places.
    Returns each as [centre x, centre y, radius (px), disc (1) or square (0), r, g, b]."""
    s = img.shape[0]
    yy, xx = np.mgrid[0:s, 0:s] + 0.5
    details = []
    for _ in range(n):
        r = rng.uniform(min_frac, max_frac) * s
        cx, cy = rng.uniform(0, s, size=2)
        disc = rng.random() < 0.5
        if disc:
            m = np.hypot(xx - cx, yy - cy) <= r
        else:
            m = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
        colour = rng.uniform(0, 1, size=3)
        img[m] = colour
        details.append([float(cx), float(cy), float(r), float(disc), *map(float, colour)])
    return details


# ---------------------------------------------------------------- the whole benchmark

BLOCK = 8192  # images rendered, stored and indexed at a time (a multiple of the store's chunk)
BLOCK_BYTES = 2**28  # ... fewer where BLOCK images would hold more than this


def block_rows(image_size: int, chunk_rows: int = 256) -> int:
    """Images per block at this size: BLOCK, or as many whole chunks as BLOCK_BYTES hold."""
    fit = BLOCK_BYTES // (image_size * image_size * 3) // chunk_rows * chunk_rows
    return max(chunk_rows, min(BLOCK, fit))


def generate_blocks(cfg: SynthConfig) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """The benchmark a block of images at a time (`block_rows`): (images (n, H, W, 3) uint8, their index rows:
    id, label, scene, boxes, details (what `_draw_details` drew: the crop tags of the
    one-model test read them), height, width). One random stream, drawn in image order, so
    the images do not depend on the block size."""
    rng = np.random.default_rng(cfg.seed)
    palette = scene_palette(rng)
    colours = class_colours(cfg.n_classes, rng)
    n = cfg.n_classes * cfg.images_per_class
    labels = np.repeat(np.arange(cfg.n_classes), cfg.images_per_class)
    preferred = labels % N_SCENES
    use_preferred = rng.random(n) < cfg.correlation
    scenes = np.where(use_preferred, preferred, rng.integers(0, N_SCENES, size=n))
    rows = block_rows(cfg.image_size)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        images = np.empty((hi - lo, cfg.image_size, cfg.image_size, 3), np.uint8)
        boxes, details = [], []
        for i in range(lo, hi):
            images[i - lo], box, drawn = render_image(int(labels[i]), int(scenes[i]), palette,
                                                      colours, cfg, rng)
            boxes.append([list(box)])
            details.append(drawn)
        yield images, pd.DataFrame({
            "id": [f"synth-{i:07d}" for i in range(lo, hi)],
            "label": labels[lo:hi].astype(np.int64),
            "scene": scenes[lo:hi].astype(np.int64),
            "boxes": boxes,
            "details": details,
            "height": cfg.image_size,
            "width": cfg.image_size,
        })


def generate(cfg: SynthConfig) -> tuple[np.ndarray, pd.DataFrame]:
    """All images (N, H, W, 3) uint8 and the index (`generate_blocks`), held whole."""
    blocks = list(generate_blocks(cfg))
    return (np.concatenate([images for images, _ in blocks]),
            pd.concat([index for _, index in blocks], ignore_index=True))


def run(images_path: str, index_path: str, rejects_path: str | None = None, *, classes: int,
        images_per_class: int,
        image_size: int, correlation: float, seed: int, details: int = SynthConfig.n_details,
        detail_size: tuple[float, float] = (SynthConfig.detail_min_frac,
                                            SynthConfig.detail_max_frac)) -> None:
    """Write the benchmark a block at a time: the job holds one block, whatever the size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..core.store import create_images
    cfg = SynthConfig(n_classes=classes, images_per_class=images_per_class,
                      image_size=image_size, correlation=correlation, n_details=details,
                      detail_min_frac=detail_size[0], detail_max_frac=detail_size[1], seed=seed)
    store = create_images(images_path, classes * images_per_class, (image_size, image_size))
    writer, start = None, 0
    try:
        for images, index in generate_blocks(cfg):
            store[start:start + len(images)] = images
            table = pa.Table.from_pandas(index, preserve_index=False,
                                         schema=writer.schema if writer else None)
            writer = writer or pq.ParquetWriter(index_path, table.schema)
            writer.write_table(table)
            start += len(images)
    finally:
        if writer:
            writer.close()
    if rejects_path:  # generated images have no input problems; the report reads the table
        from .sources import Rejects
        Rejects("synth").table().to_parquet(rejects_path, index=False)
