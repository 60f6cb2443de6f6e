"""Seeded synthetic prediction logs for examples, tests and benchmarks.

Classes have fixed embedding centres (the same for every seed), the classifier's logits grow
with the distance to the other centres, and pixel statistics follow plausible shapes. Keyword
arguments shift one aspect at a time, so a test can say exactly what moved.
"""

from __future__ import annotations

import numpy as np

from monitor.batch import LogBatch
from monitor.imagestats import STAT_NAMES

_CENTRE_SEED = 20_261_122


def synthetic_batch(
    n: int,
    *,
    seed: int = 0,
    n_classes: int = 10,
    dim: int = 128,
    brightness: float = 0.0,
    embedding_shift: float = 0.0,
    temperature: float = 1.0,
    class_weights: np.ndarray | None = None,
    embeddings: bool = True,
    pixel: bool = True,
) -> LogBatch:
    """``n`` logs; ``brightness=-0.18`` darkens images by 18%, ``embedding_shift`` moves every
    embedding along a fixed direction (in units of the noise scale), ``temperature > 1`` makes
    the model less confident, ``class_weights`` changes the class mix.

    >>> b = synthetic_batch(200, seed=0)
    >>> len(b), b.embeddings.shape, b.pixel.shape, b.n_classes
    (200, (200, 128), (200, 13), 10)
    """
    rng = np.random.default_rng(seed)
    fixed = np.random.default_rng(_CENTRE_SEED)
    centres = fixed.normal(0.0, 1.0, size=(n_classes, dim)) * 0.28 * np.sqrt(128 / dim)
    direction = fixed.normal(size=dim)
    direction /= np.linalg.norm(direction)
    weights = np.ones(n_classes) if class_weights is None else np.asarray(class_weights, float)
    labels = rng.choice(n_classes, size=n, p=weights / weights.sum())
    emb = centres[labels] + rng.normal(0.0, 1.0, size=(n, dim)) + embedding_shift * direction
    logits = 0.5 * (emb @ centres.T)
    logits = logits / temperature
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    predicted = probs.argmax(axis=1)
    pix = None
    if pixel:
        bright = np.clip(rng.normal(0.45, 0.08, n), 0.0, 1.0) * (1.0 + brightness)
        chan = np.clip(bright[:, None] + rng.normal(0.0, 0.03, (n, 3)), 0.0, 1.0)
        cols = {
            "brightness": bright,
            "contrast": np.abs(rng.normal(0.2, 0.04, n)),
            "mean_r": chan[:, 0],
            "mean_g": chan[:, 1],
            "mean_b": chan[:, 2],
            "saturation": rng.beta(2.0, 5.0, n),
            "sharpness": rng.lognormal(-3.0, 0.5, n),
            "entropy": rng.normal(6.5, 0.4, n),
            "clipped_black": rng.beta(0.5, 30.0, n),
            "clipped_white": rng.beta(0.5, 30.0, n) * (1.0 + brightness),
            "width": np.full(n, 224.0),
            "height": np.full(n, 224.0),
            "aspect": np.ones(n),
        }
        pix = np.column_stack([cols[name] for name in STAT_NAMES])
    return LogBatch(
        probs=probs.astype(np.float32),
        predicted=predicted.astype(np.int64),
        embeddings=emb.astype(np.float32) if embeddings else None,
        pixel=pix,
        labels=labels.astype(np.int64),
        latency_ms=rng.gamma(4.0, 5.0, n),
    )
