"""Captions into token ids, and the text tower of a CLIP-style model.

The tokenizer needs no vocabulary file (nothing is downloaded, nothing is fitted): a caption
is lower-cased, split into words (runs of letters and digits) and each word hashed (CRC-32)
into one of `buckets` ids, after two reserved ids: 0 pads, 1 marks the end of the caption.
Two words sharing a bucket are one token to the model; with 2^15 buckets and a caption
vocabulary of a few thousand words that is rare, and it never depends on the data seen.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import torch
from torch import nn

PAD, END = 0, 1
RESERVED = 2
WORD = re.compile(r"[a-z0-9]+")


def words(caption: str) -> list[str]:
    return WORD.findall(caption.lower())


def tokenize(captions: list[str], context: int = 32, buckets: int = 2**15) -> np.ndarray:
    """(n, context) int32 token ids (half the memory of int64; an embedding reads either):
    each caption's words (the first context - 1), END, then PAD."""
    out = np.full((len(captions), context), PAD, np.int32)
    for i, caption in enumerate(captions):
        ids = [RESERVED + zlib.crc32(w.encode()) % buckets for w in words(caption)]
        ids = ids[:context - 1] + [END]
        out[i, :len(ids)] = ids
    return out


class TextTower(nn.Module):
    """Token and position embeddings, pre-norm Transformer blocks, the END token's final
    state (the whole caption, as CLIP's text encoder reads it) through a LayerNorm and a
    linear map to `out_dim`."""

    def __init__(self, out_dim: int, buckets: int = 2**15, context: int = 32, dim: int = 128,
                 depth: int = 2, heads: int = 4):
        super().__init__()
        from .vit import transformer
        self.tokens = nn.Embedding(RESERVED + buckets, dim, padding_idx=PAD)
        self.position = nn.Parameter(torch.randn(1, context, dim) * 0.01)
        self.blocks = transformer(dim, depth, heads)
        self.norm = nn.LayerNorm(dim)
        self.project = nn.Linear(dim, out_dim, bias=False)
        self.arch = {"out_dim": out_dim, "buckets": buckets, "context": context, "dim": dim,
                     "depth": depth, "heads": heads}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (N, context) int32 or int64 -> (N, out_dim)."""
        x = self.tokens(ids) + self.position[:, :ids.shape[1]]
        x = self.blocks(x, src_key_padding_mask=ids == PAD)
        end = (ids == END).float().argmax(dim=1)
        return self.project(self.norm(x[torch.arange(len(ids)), end]))
