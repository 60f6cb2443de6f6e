"""``LogBatch``: the arrays of a window (or a reference set) that detectors read.

The store, the file readers and the simulators produce it; detectors only consume it. Every
array has one row per prediction log, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monitor.imagestats import STAT_NAMES


@dataclass(frozen=True)
class LogBatch:
    """Columns of N prediction logs.

    - ``probs``: (N, C) float32 class probabilities.
    - ``predicted``: (N,) int64 predicted classes.
    - ``embeddings``: (N, D) float32, or None when the logs carry none.
    - ``pixel``: (N, K) float64 pixel statistics named by ``pixel_names`` (NaN where missing).
    - ``labels``: (N,) int64 true classes, -1 where unknown.
    - ``latency_ms``: (N,) float64, NaN where unknown.
    """

    probs: np.ndarray
    predicted: np.ndarray
    embeddings: np.ndarray | None = None
    pixel: np.ndarray | None = None
    pixel_names: tuple[str, ...] = STAT_NAMES
    labels: np.ndarray | None = None
    latency_ms: np.ndarray | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.predicted)
        for name in ("probs", "embeddings", "pixel", "labels", "latency_ms"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"LogBatch.{name} has {len(arr)} rows, predicted has {n}")
        if self.pixel is not None and self.pixel.shape[1] != len(self.pixel_names):
            raise ValueError("LogBatch.pixel columns do not match pixel_names")

    def __len__(self) -> int:
        return len(self.predicted)

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[1])

    @property
    def confidence(self) -> np.ndarray:
        """Max softmax per row."""
        return np.asarray(self.probs.max(axis=1))

    def take(self, idx: np.ndarray) -> LogBatch:
        """The rows ``idx`` (an index array or boolean mask)."""

        def pick(arr: np.ndarray | None) -> np.ndarray | None:
            return None if arr is None else arr[idx]

        return LogBatch(
            probs=self.probs[idx],
            predicted=self.predicted[idx],
            embeddings=pick(self.embeddings),
            pixel=pick(self.pixel),
            pixel_names=self.pixel_names,
            labels=pick(self.labels),
            latency_ms=pick(self.latency_ms),
            meta=dict(self.meta),
        )
