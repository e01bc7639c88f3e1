"""Reference text models g of the one-model VLM test (definitions §14): a caption's
embedding by a model that never saw set A, whose nearest public captions give the objects
a caption alone predicts.

The built-in g is TF-IDF over hashed words: a caption's words (core.text.words) counted
into `dim` buckets by CRC-32, each bucket weighted by its inverse document frequency over
the public records' captions only, and the vector L2-normalised. Its only statistics are
the public captions', so nothing of A, B or the held-out records reaches it; it needs no
training and no download, and it is deterministic. It stands for "what the words of a
caption say about its objects, given the public records", the baseline the one-model test
measures a VLM against.

A user's sentence-embedding model can be g instead: a sentence-transformers folder (or a
Hugging Face model folder, mean-pooled by sentence-transformers) given by path, loaded
from disk only (`pip install 'dejavu-memorization[sentence]'`). It must not have been
trained on A's captions; that is the user's to know.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..core.text import words
from . import data
from .embeddings import write_blocks


def counts(captions: list[str], dim: int) -> np.ndarray:
    """(n, dim) float32 word counts per hash bucket."""
    out = np.zeros((len(captions), dim), np.float32)
    for i, caption in enumerate(captions):
        for word in words(caption):
            out[i, zlib.crc32(word.encode()) % dim] += 1
    return out


def fit_idf(batches, dim: int) -> np.ndarray:
    """(dim,) smoothed inverse document frequency, log((1 + n) / (1 + df)) + 1, over
    captions given a batch at a time (lists of captions)."""
    df, n = np.zeros(dim, np.int64), 0
    for captions in batches:
        df += (counts(captions, dim) > 0).sum(axis=0)
        n += len(captions)
    return (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)


def tfidf(captions: list[str], idf: np.ndarray) -> np.ndarray:
    """(n, dim) float32 L2-normalised TF-IDF vectors (all zero for a caption of no word)."""
    x = counts(captions, len(idf)) * idf
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def sentence_model(path: str, device: str = "cpu"):
    """A local sentence-transformers model, never fetched from the Hub."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError("vlm.onemodel.reference sentence_transformers needs "
                          "pip install 'dejavu-memorization[sentence]'") from err
    return SentenceTransformer(path, device=device, local_files_only=True)


def run_embed(store: str, split_path: str, out: str, *, reference: str = "tfidf",
              dim: int = 4096, path: str | None = None, batch_size: int = 4096,
              chunk_rows: int = 65_536, device: str = "cpu") -> None:
    """The vlm_reference stage: every record's caption embedded by g -- TF-IDF with its IDF
    fitted on the public captions, or the sentence-embedding model at `path` -- as a store
    of `text` embeddings in row order."""
    records = data.Records(store)
    rows = records.rows
    if reference == "tfidf":
        public = data.set_rows(split_path, "public")
        idf = fit_idf((records.captions(public[lo:lo + batch_size])
                       for lo in range(0, len(public), batch_size)), dim)
        embed = lambda captions: tfidf(captions, idf)  # noqa: E731
    else:
        from ..core.models import pick_device
        model = sentence_model(path, str(pick_device(device)))
        embed = lambda captions: model.encode(  # noqa: E731
            captions, batch_size=min(batch_size, 256), convert_to_numpy=True,
            show_progress_bar=False).astype(np.float32)
    write_blocks(out, len(rows), ({"text": embed(records.captions(rows[lo:lo + batch_size]))}
                                  for lo in range(0, len(rows), batch_size)), chunk_rows)
