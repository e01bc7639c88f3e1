"""What a correlation classifier says of a crop, from its (N, C) class probabilities: the
prediction, the confidence (the k-NN's negative entropy, so both tests rank alike), and the
few most probable classes the stage keeps, a block of crops at a time."""

from __future__ import annotations

import numpy as np

from ..attack.knn import confidence as knn_confidence

def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy (natural log, 0 log 0 = 0) of each row of (N, C) probabilities."""
    return -knn_confidence(probs)


def classify(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, confidence) of (N, C) class probabilities: the most probable class (the
    smaller id on ties) and the k-NN's confidence, the negative entropy."""
    return np.argmax(probs, axis=1), knn_confidence(probs)


TOP = 5  # most probable classes kept per crop (with their probabilities)
BLOCK_CROPS = 4096  # crops predicted at once: the (block, classes) probabilities at a time


def summarize(probs: np.ndarray) -> dict[str, np.ndarray]:
    """What the stage keeps of a block's (N, C) class probabilities: the prediction, the
    confidence, and the TOP most probable classes with their probabilities (not the whole
    distribution: N x C is 4 GB for 10^6 crops of ImageNet's 1,000 classes)."""
    prediction, confidence = classify(probs)
    width = min(TOP, probs.shape[1])
    # a copy: the slice alone would keep the block's whole (N, C) argsort alive
    top = np.argsort(-probs, axis=1, kind="stable")[:, :width].copy()
    return {"prediction": prediction, "confidence": confidence, "top5": top,
            "top5_probs": np.take_along_axis(probs, top, 1).astype(np.float32)}


def joined(blocks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([block[key] for block in blocks]) for key in blocks[0]}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
