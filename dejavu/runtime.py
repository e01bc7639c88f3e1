"""How long a job asks its cluster for (minutes), as formulas of its work: multiply-adds
at a planned rate, with a start and a safety factor. Memory is `dejavu.resources`'s.

Pure arithmetic on numbers (no torch), called by the Snakefile's rules with sizes read from
their inputs' metadata (`workflow/rules/resources.smk`) and by `bench/project.py`.
"""

from __future__ import annotations

import math

from .resources import BACKBONES, VIEWS, backbone_size

# A job asks for START_MINUTES, plus SAFETY times its work (multiply-adds, MACs) at the rate
# it computes at, and at least MIN_MINUTES. The rates are planning figures, set below what
# was measured so that slower machines fit:
# - a CPU thread, 8 GMAC/s: the demo's ConvNet trains here at 1,613 images/s on 2 threads
#   (`python bench/train_throughput.py`), 2 views x 3 passes x 4.0 M MACs = 19 GMAC/s per
#   thread; AVX2-only CPUs, small batches and the data path take a good part of that.
# - a GPU, 20 TMAC/s: an H100 runs ResNet-101's 7.8 GMAC forward in bf16 at about 9K
#   images/s (70 TMAC/s); older GPUs, float32 parts and loading take their share.
CPU_MACS_PER_S = 8e9
GPU_MACS_PER_S = 2e13
START_MINUTES = 5     # imports, reading inputs' metadata, writing outputs
SAFETY = 3
MIN_MINUTES = 10
PASSES = 3            # a training step: the forward, and a backward of about twice its work

# Forward MACs (billions) per image at 224 px with the standard 7x7/2 stem and max-pool
RESNET_GMACS_224 = {"resnet10": 0.89, "resnet18": 1.82, "resnet34": 3.67, "resnet50": 4.11,
                    "resnet101": 7.83}


def minutes(macs: float, gpus: int = 0, threads: int = 1) -> int:
    """Minutes a job asks for to compute `macs` multiply-adds on `gpus` GPUs, else on
    `threads` CPU threads."""
    rate = gpus * GPU_MACS_PER_S if gpus else max(1, threads) * CPU_MACS_PER_S
    return max(MIN_MINUTES, math.ceil(START_MINUTES + SAFETY * macs / rate / 60))


def resnet_macs(name: str, side: int, small_stem: bool = False, width: int = 64) -> float:
    """Forward MACs of a ResNet (`resnet<depth>`) at `side` px and first-stage `width`: a
    small stem (3x3, stride 1, no max-pool) keeps 16 times the pixels."""
    macs = RESNET_GMACS_224[name] * 1e9 * (side / 224) ** 2 * (width / 64) ** 2
    return macs * (16 if small_stem else 1)


def forward_macs(backbone: str, width: int, side: int, projector: list[int] = (), *,
                 small_stem: bool = False, patch_size: int = 16) -> float:
    """Forward MACs of one image through a backbone (an external architecture counts as
    ResNet-50) and its projector."""
    if backbone == "convnet":  # 3x3 convolutions, each block at half the previous side
        widths = [3] + [width * 2**i for i in range(4)]
        macs = sum(9 * a * b * (side / 2**i) ** 2
                   for i, (a, b) in enumerate(zip(widths, widths[1:])))
    elif backbone.startswith("vit"):  # about one MAC per parameter and token
        macs = BACKBONES[backbone][0] * 1e6 * (side / patch_size) ** 2
    else:
        known = backbone in RESNET_GMACS_224
        macs = resnet_macs(backbone if known else "resnet50", side, small_stem and known)
    dims = [backbone_size(backbone, width)[1], *projector]
    return macs + sum(a * b for a, b in zip(dims, dims[1:]))


def unet_macs(resolution: int, channels: list[int], layers_per_block: int = 1) -> float:
    """Forward MACs of the decoder's UNet: per level of c channels on p pixels, about
    (5.5 x layers + 6.5) 3x3 convolutions of c x c -- `layers` residual blocks down, one more
    up taking the skip, resampling and the middle block (fitted to counts over diffusers'
    UNet2DModel, 2-4 levels: within 10 %, tests/test_resources.py)."""
    levels = [c * c * (resolution / 2**i) ** 2 for i, c in enumerate(channels)]
    return 9 * (5.5 * layers_per_block + 6.5) * sum(levels)


def train_minutes(*, epochs: int, n_images: int, forward: float, gpus: int,
                  processes: int) -> int:
    """Every epoch's views through the model, forward and backward."""
    return minutes(epochs * n_images * VIEWS * PASSES * forward, gpus, processes)


def embed_minutes(*, rows: int, forward: float, gpus: int) -> int:
    """One shard job's rows through the model."""
    return minutes(rows * forward, gpus)


def knn_minutes(*, n_public: int, n_queries: int, dims: int, gpus: int) -> int:
    """Exhaustive search: every query against every public embedding."""
    return minutes(n_queries * n_public * dims, gpus)


def probe_minutes(*, n_train: int, n_test: int, n_public: int, forward: float, dims: int,
                  classes: int, steps: int, gpus: int) -> int:
    """Embedding the training set and the test split, the regression's full-batch steps,
    and the k-NN accuracy's search of the public set."""
    return minutes((n_train + n_test) * forward + steps * PASSES * n_train * dims * classes
                   + n_test * n_public * dims, gpus)


def sslmem_minutes(*, n_scored: int, views: int, forward: float, gpus: int) -> int:
    """Every scored image's views through both models."""
    return minutes(2 * n_scored * views * forward, gpus)


def correlation_minutes(*, n_train: int, n_crops: int, forward: float, epochs: int,
                        gpus: int) -> int:
    """The classifier's training epochs, then a prediction for every crop."""
    return minutes(epochs * n_train * PASSES * forward + n_crops * forward, gpus)


def limited_minutes(max_runtime: float | None) -> int | None:
    """What a job that continues itself past `max_runtime` minutes (train.max_runtime,
    rcdm.max_runtime) asks for: the limit and ten minutes to start and save; None without
    one."""
    return None if max_runtime is None else math.ceil(max_runtime) + 10


def decoder_train_minutes(*, steps: int, batch_size: int, forward: float, gpus: int) -> int:
    return minutes(steps * batch_size * PASSES * forward, gpus)


def decoder_sample_minutes(*, examples: int, self_images: int, samples: int,
                           sample_steps: int, forward: float, gpus: int) -> int:
    """Both decoders draw `samples` of every decoded image, `sample_steps` each: `examples`
    attacked images per group (memorized, correlated) and half, and `self_images`."""
    images = 2 * 2 * examples + self_images
    return minutes(2 * images * samples * sample_steps * forward, gpus)


def synth_minutes(*, n_images: int, side: int) -> int:
    """The benchmark draws each image in Python: measured 0.38 ms at 16 px, 0.53 at 32,
    1.1 at 64, 3.5 at 128 (`dejavu.data.synth.generate_blocks`, one thread), about 0.35 ms
    plus 0.2 us per pixel."""
    seconds = n_images * (0.35e-3 + 0.2e-6 * side * side)
    return max(MIN_MINUTES, math.ceil(START_MINUTES + SAFETY * seconds / 60))
