"""What the vision-language test's jobs ask a cluster for (docs/cluster.md, "The
vision-language test at scale"): memory (MB) and minutes as formulas of the records'
sizes and the `vlm` settings, on the image test's bases and rates (`dejavu.resources`,
`dejavu.runtime`). Pure arithmetic, no torch.

Terms that grow with the records by design, each named: the records every stage reads
(`vlm.data.Records`: captions and object bools, `record_bytes` a record; vlm_data holds
COCO's as Python objects while it writes them, SOURCE_RECORD_BYTES, and 80 bytes a line
of a JSON-lines file), the training set's token ids (context x 4 bytes a record,
twice: NumPy and torch), the true objects and the
per-record scores of the test (12 bytes per model, k and mode). Everything else follows a
batch, a chunk or a block of queries.
"""

from __future__ import annotations

import math

from ..resources import (LIGHT_BASE_MB, MB, STATE_BYTES_PER_PARAM, TORCH_BASE_MB, VIEWS,
                         backbone_size, image_mb, train)
from ..runtime import (MIN_MINUTES, SAFETY, START_MINUTES, forward_macs, minutes,
                       synth_minutes, train_minutes)

# A record as the adapters and the synthetic benchmark hold it while vlm_data writes the
# store: id, path and caption strings, two lists of object ids as Python objects
SOURCE_RECORD_BYTES = 1024


def record_bytes(vocabulary: int) -> int:
    """A record as `vlm.data.Records` holds it: its caption in an Arrow array (COCO's are
    about 52 characters), its objects and named objects as 2V bools, and what reading the
    Parquet file holds for a moment. Measured 270-330 bytes at V = 80 with 56-character
    captions (`python bench/vlm_scale.py`: 200,000 records, RSS growth); 192 + 2V is
    352."""
    return 192 + 2 * vocabulary
JSON_BYTES_PER_FILE_BYTE = 8   # an annotation file parsed into Python objects
# A JSON-lines file's first pass (vlm.records.jsonl_chunks): 16 bytes a line while reading
# (a path hash and the line's number), more at its end (the sort finding each path's first
# line: the sorted hashes, their order, the inverse and the first lines). Counted as 56 at
# first; measured 74 at its peak (`python bench/vlm_scale.py`, 2,000,000 lines): 80
JSONL_BYTES_PER_LINE = 80
DECODE_MB = 64                 # one large image decoded at full size (PIL), and its resize
# training.loader.LoaderConfig's defaults, which the VLM training uses (a unit test keeps
# them equal; not imported: this module is read when the Snakefile is parsed, without torch)
LOADER = {"cache_mb": 1024, "workers": 2, "prefetch": 2}


def text_params(*, buckets: int, context: int, text_dim: int, text_depth: int,
                out_dim: int, **_) -> float:
    """Parameters of the text tower (core.text.TextTower): token and position tables,
    `text_depth` Transformer blocks of about 12 x dim² each, the projection."""
    return ((buckets + 2 + context) * text_dim + 12 * text_depth * text_dim ** 2
            + text_dim * out_dim)


def text_macs(*, context: int, text_dim: int, text_depth: int, out_dim: int, **_) -> float:
    """Forward MACs of one caption: per block 12 x dim² per token and the attention's
    2 x context x dim per token, then the projection."""
    per_token = text_depth * (12 * text_dim ** 2 + 2 * context * text_dim)
    return context * per_token + text_dim * out_dim


def data_mb(*, source: str, side: int, chunk_rows: int, n_records: int = 0,
            annotation_bytes: int = 0, lines: int = 0) -> int:
    """vlm_data: the synthetic benchmark is drawn whole (its images twice); a real source
    holds one decoded image and one block of `chunk_rows` records and images (twice: drawn
    and encoded), and either its parsed COCO annotation files and every record, or a
    JSON-lines file's `lines` hashes (`JSONL_BYTES_PER_LINE`; its records stream)."""
    records = SOURCE_RECORD_BYTES * n_records / MB
    if source == "synthetic":
        return math.ceil(TORCH_BASE_MB + 2 * image_mb(n_records, side) + records)
    held = (JSONL_BYTES_PER_LINE * lines / MB if source == "jsonl" else
            JSON_BYTES_PER_FILE_BYTE * annotation_bytes / MB + records)
    return math.ceil(LIGHT_BASE_MB + held + SOURCE_RECORD_BYTES * chunk_rows / MB + DECODE_MB
                     + 2 * image_mb(chunk_rows, side))


# Real images decoded and resized onto the canvas by one thread: the slow end of the
# loader's measured 65-147 images/s decompressing and resizing (docs/benchmarks.md,
# "Loader throughput"); a camera JPEG decodes slower than a stored canvas
DECODE_IMAGES_PER_S = 65


def data_min(*, source: str, n_images: int, side: int) -> int:
    """vlm_data's minutes: the synthetic benchmark drawn (`runtime.synth_minutes`), or each
    record's image decoded in one thread at DECODE_IMAGES_PER_S, at the planning factor."""
    if source == "synthetic":
        return synth_minutes(n_images=n_images, side=side)
    seconds = n_images / DECODE_IMAGES_PER_S
    return max(MIN_MINUTES, math.ceil(START_MINUTES + SAFETY * seconds / 60))


def train_mb(*, n_records: int, vocabulary: int, n_set: int, side: int, batch_size: int,
             backbone: str, width: int, projector: list[int], text: dict,
             on_cpu: bool, processes: int = 1) -> int:
    """vlm_train: the image test's training formula for the image tower (its set held by
    the loader when it fits the default 1 GB cache, else streamed from the store a batch
    at a time), the text tower's state, the set's token ids, the records -- each of these
    but the records (read before the processes start) once per data-parallel process."""
    image = train(n_images=n_set, side=side, processes=processes, batch_size=batch_size,
                  backbone=backbone, width=width, projector=projector, **LOADER,
                  on_cpu=on_cpu)["mem_mb"]
    tower = STATE_BYTES_PER_PARAM * text_params(**text, out_dim=projector[-1]) / MB
    tokens = 2 * 4 * text["context"] * n_set / MB
    return math.ceil(image + processes * (tower + tokens)
                     + record_bytes(vocabulary) * n_records / MB)


def embed_mb(*, n_records: int, vocabulary: int, side: int, batch_size: int,
             chunk_rows: int, dims: int) -> int:
    """vlm_embed: one batch of images as stored and as float32, the chunk of embeddings
    buffered and its concatenated copy (image and caption: `dims` together), the records
    table."""
    batch = batch_size * 5 * side * side * 3 / MB
    return math.ceil(TORCH_BASE_MB + batch + 2 * 4 * chunk_rows * dims / MB
                     + record_bytes(vocabulary) * n_records / MB)


def reference_mb(*, n_records: int, vocabulary: int, dim: int, chunk_rows: int,
                 batch_size: int = 4096, model_bytes: int = 0) -> int:
    """vlm_reference (torch is imported with the tokenizer's module): the records, a batch
    of counts and its weighted copy (TF-IDF: `dim` wide; a sentence model's embeddings are
    narrower), the chunk of embeddings buffered and its concatenated copy, and a sentence
    model's weights twice (read, then loaded) -- `model_bytes`, its folder's size."""
    return math.ceil(TORCH_BASE_MB + record_bytes(vocabulary) * n_records / MB
                     + 4 * dim * (2 * batch_size + 2 * chunk_rows) / MB
                     + 2 * model_bytes / MB)


def test_mb(*, n_records: int, n_public: int, n_scored: int, vocabulary: int, dim: int,
            k: int, keys: int, query_rows: int, search_mb: int) -> int:
    """vlm_test: the records, the public records' objects, the true objects and the
    per-record scores of the two sets a control holds at once (target and reference, 12
    bytes per k and mode), one block of queries with their k neighbours and those
    neighbours' objects, and the search's working memory (`search_mb`: knn.memory_mb)."""
    per_record = record_bytes(vocabulary) * n_records + vocabulary * n_public
    scored = n_scored * (vocabulary + 2 * 12 * keys)
    block = query_rows * (8 * dim + 20 * k + k * vocabulary)
    return math.ceil(TORCH_BASE_MB + (per_record + scored + block) / MB + search_mb)


def train_min(*, epochs: int, n_set: int, side: int, backbone: str, width: int,
              projector: list[int], text: dict, gpus: int, processes: int = 1) -> int:
    """vlm_train: every epoch's images and captions, forward and backward, shared by the
    job's GPUs (or its processes' CPU threads)."""
    forward = (forward_macs(backbone, width, side, projector)
               + text_macs(**text, out_dim=projector[-1]))
    return train_minutes(epochs=epochs, n_images=n_set, forward=forward / VIEWS, gpus=gpus,
                         processes=processes)  # train_minutes counts VIEWS views; a record 1


def embed_min(*, n_records: int, side: int, backbone: str, width: int,
              projector: list[int], text: dict, gpus: int) -> int:
    forward = (forward_macs(backbone, width, side, projector)
               + text_macs(**text, out_dim=projector[-1]))
    return minutes(n_records * forward, gpus)


def test_min(*, n_public: int, n_scored: int, dim: int, searches: int, gpus: int) -> int:
    """vlm_test: each scored caption against every public record, by each model, per
    search."""
    return minutes(2 * searches * n_scored * n_public * dim, gpus)


def image_dim(backbone: str, width: int, projector: list[int]) -> int:
    """The shared embedding's size: the projector's output (the backbone's without one)."""
    return projector[-1] if projector else backbone_size(backbone, width)[1]
