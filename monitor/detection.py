"""The library call: compare a current window with a reference, get one calibrated verdict.

>>> from monitor import detect
>>> from monitor.detectors.simulate import synthetic_batch
>>> ref, cur = synthetic_batch(2000, seed=0), synthetic_batch(500, seed=1, brightness=-0.2)
>>> verdict = detect(ref, cur)
>>> verdict.drifted, verdict.p_value < 0.05, verdict.families["pixel"].drifted
(True, True, True)
>>> detect(ref, synthetic_batch(500, seed=2)).drifted
False

Windows are :class:`~monitor.batch.LogBatch` objects or mappings of arrays: ``probs`` (N, C)
(required), ``predicted`` (N,) (default: the arg-max), ``embeddings`` (N, D), and either
``pixel`` (N, 13 statistics in :data:`~monitor.imagestats.STAT_NAMES` order) or ``images``
(N, H, W[, 3]). The reference may also be the fitted profiles of
:func:`monitor.detectors.registry.fit_all` (that is how the evaluator calls it).

The verdict is one test at the family-wise ``alpha`` (:attr:`DetectorSettings.alpha`, default
0.05): each family runs at its share of it (Holm across its own features), and the window's
p-value is the weighted Bonferroni combination ``min(1, min_f p_f * A / alpha_f)`` with
``A = sum_f alpha_f``, so ``p < A`` exactly when some family is significant at its share and
the rate of windows with any alarm under no shift is at most ``A``, whatever the dependence
between the families. Effect-size floors only decide severity and, in windows of at least
``floor_min_rows``, suppress significant but trivial moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.batch import LogBatch
from monitor.detectors.base import ProfileBase
from monitor.detectors.registry import fit_all, score_all
from monitor.imagestats import batch_stats
from monitor.results import DriftResult
from monitor.settings import DetectorSettings

#: A window: a batch of logs, or its columns as arrays.
Window = LogBatch | Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    """Per-family results and the window's combined, calibrated verdict."""

    results: tuple[DriftResult, ...]
    p_value: float  # weighted Bonferroni over the families
    alpha: float  # the family-wise budget the families spent
    drifted: bool  # some family significant at its share, and not trivial

    @property
    def families(self) -> dict[str, DriftResult]:
        return {r.family: r for r in self.results}

    @property
    def significant(self) -> bool:
        """``p_value < alpha``: the window differs (before the floors judge triviality)."""
        return self.p_value < self.alpha


def as_batch(window: Window) -> LogBatch:
    """A :class:`LogBatch` from a batch or a mapping of arrays.

    >>> b = as_batch({"probs": np.array([[0.9, 0.1], [0.2, 0.8]])})
    >>> b.predicted.tolist(), b.pixel is None
    ([0, 1], True)
    """
    if isinstance(window, LogBatch):
        return window
    unknown = set(window) - {"probs", "predicted", "embeddings", "pixel", "images", "labels"}
    if unknown:
        raise ValueError(f"unknown window arrays {sorted(unknown)}")
    if "probs" not in window:
        raise ValueError("a window needs probs (N, C)")
    probs = np.asarray(window["probs"], dtype=np.float32)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, C), got shape {probs.shape}")
    predicted = window.get("predicted")
    pixel = window.get("pixel")
    if pixel is None and window.get("images") is not None:
        pixel = batch_stats(np.asarray(window["images"]))
    embeddings = window.get("embeddings")
    return LogBatch(
        probs=probs,
        predicted=np.asarray(probs.argmax(axis=1) if predicted is None else predicted, np.int64),
        embeddings=None if embeddings is None else np.asarray(embeddings, dtype=np.float32),
        pixel=None if pixel is None else np.asarray(pixel, dtype=np.float64),
        labels=None if window.get("labels") is None else np.asarray(window["labels"], np.int64),
    )


def combine(results: list[DriftResult]) -> Verdict:
    """The window's verdict from its families' results (weighted Bonferroni).

    >>> from monitor.results import DriftResult
    >>> r = lambda f, p: DriftResult(f, f, "m", 0.0, p, 0.0, 0.1, 0.025, p < 0.025, 10, 10)
    >>> v = combine([r("a", 0.02), r("b", 0.5)])
    >>> round(v.p_value, 3), v.alpha, v.drifted
    (0.04, 0.05, True)
    """
    budget = float(sum(r.alpha for r in results))
    if not results or budget <= 0:
        return Verdict(tuple(results), 1.0, budget, False)
    ratios = [(1.0 if r.p_value is None else r.p_value) * budget / r.alpha for r in results]
    p_value = float(min(1.0, min(ratios)))
    return Verdict(tuple(results), p_value, budget, any(r.drifted for r in results))


def detect(
    reference: Window | Mapping[str, ProfileBase],
    current: Window,
    settings: DetectorSettings | None = None,
    *,
    model: str = "default",
    seed: int = 0,
    device: str | None = None,
) -> Verdict:
    """Score ``current`` against ``reference`` with every family; see the module docstring.

    ``device`` (``"cpu"``, ``"cuda"``) runs the embedding test with torch.
    """
    detectors = settings or DetectorSettings()
    if isinstance(reference, Mapping) and all(
        isinstance(v, ProfileBase) for v in reference.values()
    ):
        profiles: Mapping[str, ProfileBase] = reference
    else:
        profiles = fit_all(as_batch(reference), detectors, model, seed=seed)
    cur = as_batch(current)
    return combine(score_all(dict(profiles), cur, detectors, model, device=device))
