"""What a job asks its cluster for, as formulas of the config and of the sizes it reads.

Each memory formula (MB) is a measured base -- a Python process with its libraries, and a
model where the job holds one -- plus every term that grows with the data, named after what
it holds. The bases were read off the benchmark files (peak RSS) of the tiny run, the demo
and the tiny ImageNet run (`python bench/scale.py` prints measured beside declared for every
job). A few stages hold something that grows with the dataset by design; their term says
so: the k-NN's flat FAISS index (|X| x d), the probe's embeddings, the decoders' public set.

Pure arithmetic on numbers (no torch): the Snakefile's rules call it with sizes read from
their inputs' metadata (`workflow/rules/common.smk`).
"""

from __future__ import annotations

import math

MB = 2**20

# Peak RSS of a job's process before the data: measured 580-1230 MB for jobs that import
# torch and hold a small model (the decoders, with diffusers, the most), 110-200 MB for
# pandas/Zarr jobs, 610-750 MB for the report
TORCH_BASE_MB = 1500
LIGHT_BASE_MB = 400
REPORT_BASE_MB = 1200

# Parameters (millions) and feature size of the fixed-size backbones (torchvision / the
# ViTs of `core.models`); the ConvNet's follow from its width
BACKBONES = {"resnet18": (11.2, 512), "resnet34": (21.3, 512), "resnet50": (23.5, 2048),
             "resnet101": (42.5, 2048), "vit_mini": (1.2, 128), "vit_tiny": (5.5, 192),
             "vit_small": (21.7, 384), "vit_base": (85.8, 768)}
STATE_BYTES_PER_PARAM = 16  # weights, gradients and two optimizer moments, float32
CORRELATION_HOLD_MB = 1024  # onemodel.correlation.HOLD_BYTES (a unit test keeps them equal)


def dtype_bytes(dtype: str) -> int:
    """Bytes per value of an embedding store's dtype (embed.dtype)."""
    return {"float16": 2, "float32": 4}[dtype]


def batch_rows(setting: int | str) -> int:
    """A batch size setting as rows (auto: its largest, 1024)."""
    return 1024 if setting == "auto" else int(setting)


def image_mb(n: int, side: int) -> float:
    """n uint8 images of side x side x 3."""
    return n * side * side * 3 / MB


def backbone_size(backbone: str, width: int) -> tuple[float, int]:
    """(parameters in millions, feature size) of a backbone."""
    if backbone == "convnet":  # 4 blocks of 3x3 convolutions, width x 1, 2, 4, 8
        widths = [3] + [width * 2**i for i in range(4)]
        params = sum(9 * a * b + 3 * b for a, b in zip(widths, widths[1:]))
        return params / 1e6, widths[-1]
    if backbone not in BACKBONES:  # an external architecture: ResNet-50's size
        return BACKBONES["resnet50"]
    return BACKBONES[backbone]


def model_state_mb(backbone: str, width: int, projector: list[int]) -> float:
    """Weights, gradients and optimizer state of a backbone and its projector."""
    params, features = backbone_size(backbone, width)
    dims = [features, *projector]
    params = params * 1e6 + sum(a * b + b for a, b in zip(dims, dims[1:]))
    return STATE_BYTES_PER_PARAM * params / MB


# Floats a training image keeps for the backward pass per input pixel (float32, forward
# activations and the backward's transients together), which a job training on the CPU
# holds in host memory. ConvNet: a convolution and a normalisation output per block, of
# width * 2^i channels on 1/4^i of the pixels, doubled for the backward: 7.5 * width
# (measured: the 64 px, width-16, batch-128 training of `python bench/scale.py` peaked 0.3
# GB above its declared memory without this term). ResNets and ViTs: estimates from their
# usual training memory at 224 px (about 35, 55, 110, 160 MB per image; the ViTs 35, 70 and
# 150 from tiny to base, 12 for the 6-block, 128-wide vit_mini), not measured here; a small
# stem keeps 16 times the pixels through the network.
ACTIVATION_FLOATS_PER_PIXEL = {"resnet18": 175, "resnet34": 275, "resnet50": 550,
                               "resnet101": 800, "vit_mini": 60, "vit_tiny": 175,
                               "vit_small": 350, "vit_base": 750}
VIEWS = 2  # images per training example (multi-crop's small views add little)


def activations_mb(backbone: str, width: int, side: int, images: int,
                   small_stem: bool = False) -> float:
    """What `images` training images at `side` px keep for the backward pass, in MB."""
    if backbone == "convnet":
        per_pixel = 7.5 * width
    else:
        per_pixel = ACTIVATION_FLOATS_PER_PIXEL.get(backbone, 550)  # external: ResNet-50's
        if small_stem and backbone.startswith("resnet"):
            per_pixel *= 16
    return images * side * side * per_pixel * 4 / MB


def train(*, n_images: int, side: int, processes: int, batch_size: int, backbone: str,
          width: int, projector: list[int], cache_mb: int, workers: int,
          prefetch: int, on_cpu: bool = False, small_stem: bool = False,
          canvas: int | None = None) -> dict:
    """mem_mb and threads of a training job: per process a base and the model's state, and
    the set as the loader holds it -- the whole set per process when it fits `cache_mb`,
    else `workers` x `prefetch` batches per process, as stored (`canvas` px: the device
    resizes them; then each process also gets a CPU per loader worker; a held set needs
    none); `on_cpu`, the batch's activations too (on a GPU they live in its memory). A
    worker reading scattered rows also holds one decompressed chunk of the store
    (`core.store.read_rows`; 3 MB for ImageNet's 16 rows of 256 px), inside the base."""
    held = image_mb(n_images, side) <= cache_mb
    per_process_batch = math.ceil(batch_size / processes)
    data = (image_mb(n_images, side) if held
            else workers * prefetch * image_mb(per_process_batch, max(side, canvas or side)))
    if on_cpu:
        data += activations_mb(backbone, width, side, VIEWS * per_process_batch, small_stem)
    mem = processes * (TORCH_BASE_MB + model_state_mb(backbone, width, projector) + data)
    return {"mem_mb": math.ceil(mem),
            "threads": processes * (1 if held else 1 + workers)}


def crops(*, n_attacked: int, canvas: int, side: int, block_rows: int) -> int:
    """The crop job holds one block of stored canvases and their crops, and the plan table
    (about 1 KB per attacked image)."""
    return math.ceil(TORCH_BASE_MB + image_mb(block_rows, canvas) + image_mb(block_rows, side)
                     + n_attacked * 1024 / MB)


# What an embed job holds per row of the table it picks its rows from (the split or the
# crops table, as pandas holds it): the rehearsal's slope was 188 bytes per index row
# (issue 38)
EMBED_BYTES_PER_ROW = 256


def embed(*, batch_size: int, canvas: int, side: int, shard_rows: int, dims: int,
          dtype_bytes: int, table_rows: int = 0) -> int:
    """An embed job holds two batches (the one embedded, the one read ahead) as stored and
    as the model sees them (float32), one shard of embeddings, and the table of rows it
    picks its own from."""
    batch = 2 * batch_size * (canvas * canvas * 3 + 4 * side * side * 3) / MB
    return math.ceil(TORCH_BASE_MB + batch + shard_rows * dims * dtype_bytes / MB
                     + EMBED_BYTES_PER_ROW * table_rows / MB)


# Bytes per crop of a k-NN table's scalar columns as pandas holds them (id strings, set,
# label, prediction, confidence, ...), and what each neighbour costs once found: its
# distance (4) and id (8, freed once the votes are counted) from the search, its dataset row
# (8), its class's vote as an int32 (class, count) pair while the voted classes are
# gathered (8, twice for a moment), and Arrow's and the Parquet writer's share. Measured:
# 28.6 bytes per neighbour between 60,000 and 600,000 crops at k = 100 and 1,000 classes
# (`python bench/knn_memory.py`: the stage after its search, every crop voting for ~95
# classes), so 32
TABLE_BYTES_PER_CROP = 512
BYTES_PER_NEIGHBOUR = 32


def knn(*, n_public: int, n_queries: int, dims: int, k: int, flat_index: bool = True) -> int:
    """With FAISS, the flat index holds every public embedding as float32 (|X| x d x 4
    bytes, grows with X by design); the torch backend streams them a shard at a time and
    holds one block (`knn.memory_mb`, on the device). Both hold the queries, their k
    neighbours and the table of them whole (the votes are counted a block of crops at a
    time, never as crops x classes)."""
    public = 4 * dims * n_public / MB if flat_index else 0
    base = LIGHT_BASE_MB if flat_index else TORCH_BASE_MB
    return math.ceil(base + public + 4 * dims * n_queries / MB
                     + (BYTES_PER_NEIGHBOUR * k + TABLE_BYTES_PER_CROP) * n_queries / MB)


# The synthetic benchmark holds one block of images (data.synth.BLOCK_BYTES at most, twice:
# drawn and stored) and, for every image, its label, scene and draws (about 32 bytes)
SYNTH_BLOCK_MB = 256


def synth(*, n_images: int) -> int:
    return math.ceil(LIGHT_BASE_MB + 2 * SYNTH_BLOCK_MB + 32 * n_images / MB)


# Bytes per index row the split holds: the index's scalar columns (no boxes or details), the
# per-class pieces and the split table they make
SPLIT_BYTES_PER_ROW = 1024


def split(*, n_rows: int) -> int:
    return math.ceil(LIGHT_BASE_MB + SPLIT_BYTES_PER_ROW * n_rows / MB)


# The score's resamples: BOOT_CHUNK (attack.score) resamples of a half at once, each held as
# about five int64 arrays (draws, their ranks, the sort, the ranked draws, the hits)
BOOT_CHUNK = 64
RESAMPLE_BYTES_PER_CROP = BOOT_CHUNK * 5 * 8


def score(*, n_crops: int, tables: int = 2) -> int:
    """The score reads the scored columns of `tables` k-NN tables of n_crops rows and
    resamples the largest half (at most all crops) BOOT_CHUNK times at once."""
    return math.ceil(LIGHT_BASE_MB + (tables * TABLE_BYTES_PER_CROP + RESAMPLE_BYTES_PER_CROP)
                     * n_crops / MB)


def onemodel(*, n_crops: int) -> int:
    """Two k-NN and two classifier tables, the per-sample table, and the score's
    resamples."""
    return score(n_crops=n_crops, tables=5)


# What the summary and the report hold per row of the per-sample tables they read (the
# one-model test's samples and SSLMem's per-image table, every combination's): the
# rehearsal's slopes against its run at a twentieth of the rows (issue 38), in two runs,
# were 1,637-1,931 and 2,678-3,661 bytes per attacked crop with five such rows per crop
# (four one-model combinations and SSLMem): up to 390 and 730 per row
SUMMARY_BYTES_PER_SAMPLE = 512
REPORT_BYTES_PER_SAMPLE = 1024


def summary(*, n_samples: int) -> int:
    return math.ceil(LIGHT_BASE_MB + SUMMARY_BYTES_PER_SAMPLE * n_samples / MB)


def report(*, n_samples: int) -> int:
    return math.ceil(REPORT_BASE_MB + REPORT_BYTES_PER_SAMPLE * n_samples / MB)


def probe(*, n_train: int, n_test: int, dims: int) -> int:
    """The linear probe fits on all training embeddings at once (float32, by design), and
    holds the test split's."""
    return math.ceil(TORCH_BASE_MB + 2 * 4 * dims * (n_train + n_test) / MB)


# SSLMem per scored image: its rows of the split and of both tables written, beside its
# draws and distances per view (the rehearsal's slope: 715 bytes per attacked image at two
# views; issue 38)
SSLMEM_BYTES_PER_IMAGE = 768


def sslmem(*, n_scored: int, side: int, batch_size: int, views: int) -> int:
    """SSLMem holds one batch and its views, and per image its rows and, per view, its
    draws and distances."""
    return math.ceil(TORCH_BASE_MB + (1 + views) * 4 * image_mb(batch_size, side)
                     + n_scored * (SSLMEM_BYTES_PER_IMAGE + views * 64) / MB)


def unitmem(*, side: int, batch_size: int) -> int:
    """UnitMem holds one batch, one view of it and the view as floats: the per-unit sums and
    maxima are a layer's width each, whatever the number of images."""
    return math.ceil(TORCH_BASE_MB + 3 * 4 * image_mb(batch_size, side))


CORRELATION_BLOCK = 4096  # onemodel.distributions.BLOCK_CROPS (a unit test keeps them equal)
# Per crop: its table row, its five classes and their probabilities, and their Arrow copies
# when written. The rehearsal's slope (issue 38) was 1,340 bytes per attacked crop, of which
# about 420 were the training crops growing with them (16 px, 300 per class): ~920
CORRELATION_BYTES_PER_CROP = 1024


def correlation(*, n_train: int, n_crops: int, side: int, classes: int) -> int:
    """The ResNet classifier holds its training crops up to CORRELATION_HOLD_MB (more
    stream), a block of crops to predict and their class probabilities (float64, a few
    copies), and per crop its table row and its top five classes."""
    return math.ceil(TORCH_BASE_MB + min(image_mb(n_train, side), CORRELATION_HOLD_MB)
                     + image_mb(CORRELATION_BLOCK, side)
                     + 4 * 8 * CORRELATION_BLOCK * classes / MB
                     + CORRELATION_BYTES_PER_CROP * n_crops / MB)


def decoder_train(*, n_public: int, resolution: int, cond_dims: int, cond_bytes: int) -> int:
    """A decoder trains on random batches of the whole public set: it holds the set at the
    decoder's resolution and its conditioning embeddings (by design: |X| grows them)."""
    return math.ceil(TORCH_BASE_MB + image_mb(n_public, resolution)
                     + n_public * cond_dims * cond_bytes / MB)


def decoder_sample(*, n_public: int, dims: int) -> int:
    """The sampler's judges search the public embeddings (float32, held whole)."""
    return math.ceil(TORCH_BASE_MB + 2 * 4 * dims * n_public / MB)


# ---------------------------------------------------------------- sizes read from inputs

def split_count(split_path: str, sets: tuple[str, ...], attacked_only: bool = False) -> int:
    """Rows of a split table in `sets` (only their attacked images with `attacked_only`)."""
    import pyarrow.parquet as pq
    table = pq.read_table(split_path, columns=["set", "attacked"]).to_pandas()
    chosen = table["set"].isin(sets)
    if attacked_only:
        chosen &= table["attacked"]
    return int(chosen.sum())


def table_rows(path: str) -> int:
    """Rows of a Parquet table, from its metadata alone."""
    import pyarrow.parquet as pq
    return pq.ParquetFile(path).metadata.num_rows


def split_classes(split_path: str) -> int:
    """Classes of a split table (its largest label + 1)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    return int(pc.max(pq.read_table(split_path, columns=["label"])["label"]).as_py()) + 1


def stored_shape(store_path: str, array: str | None = None) -> tuple[int, ...]:
    """The shape of a Zarr array (or of `array` in a group), from its metadata alone."""
    import json
    from pathlib import Path
    meta = Path(store_path, *([array] if array else []), "zarr.json")
    return tuple(json.loads(meta.read_text())["shape"])
