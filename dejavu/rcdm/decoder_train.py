"""The decoder_train stage: one SSL model's decoder, trained on the public set X and its
stored embeddings."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..core.deadline import deadline_after
from ..data.split import read_set
from .decoder import options_config, save_decoder, train_decoder

log = logging.getLogger(__name__)


def conditioning(store_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, Db + Dp) concat(backbone, projector) of a finalized embedding store, in the
    store's dtype (float16 halves ImageNet's), and its source rows (sorted)."""
    import zarr
    group = zarr.open_group(store_path, mode="r")
    rows = np.asarray(group["source_row"][:])
    order = np.argsort(rows, kind="stable")
    both = np.concatenate([group["backbone"][:], group["projector"][:]], 1)
    return both[order], rows[order]


def run_train(checkpoint: str, public_store: str, images_path: str, split_path: str,
              out_path: str, *, resume_dir: str | None = None, threads: int = 1,
              max_runtime: float | None = None, **options) -> None:
    """Train the decoder of one SSL model on the public set and its stored embeddings. With
    `max_runtime` (minutes from now), it may stop early at a resume state (OutOfTime): run it
    again."""
    deadline = deadline_after(max_runtime)
    from ..attack.embeddings import check_store
    from ..core.store import file_digest
    torch.set_num_threads(threads)
    cfg = options_config(options)
    check_store(public_store, checkpoint, "public")
    cond, rows = conditioning(public_store)
    images, _ = read_set(images_path, split_path, "public", cfg.resolution, rows)
    log.info("training a %dx%d decoder on %d public images, conditioning of %d dims, "
             "%d steps of %d", cfg.resolution, cfg.resolution, len(images), cond.shape[1],
             cfg.steps, cfg.batch_size)
    decoder, history = train_decoder(images, cond, cfg, resume_dir, deadline)
    save_decoder(out_path, decoder.cpu(), cfg, history=history, n_images=len(images),
                 checkpoint_sha256=file_digest(checkpoint))
