"""Accuracy without labels (confidence-based performance estimation) and with them.

CBPE (NannyML's confidence-based performance estimation): when the model is calibrated, each
prediction is right with probability equal to its calibrated confidence ``p_i``, so the number
right in a window is Poisson-binomial. Its mean over ``n`` logs is the estimated accuracy
``mean(p_i)``; its standard deviation is ``sqrt(sum p_i (1 - p_i)) / n``, the spread of the
realized accuracy around the estimate. The interval is the normal approximation at ``level``.
Realized accuracy on labelled logs gets a Wilson score interval.

The estimate is only as good as the calibration: under concept shift (the same images now mean
something else) or adversarial inputs the model stays confident and wrong, so the estimate
misses the loss. :func:`disagrees` is how the product notices once labels arrive.

>>> import numpy as np
>>> est = estimate_accuracy(np.full(400, 0.9))
>>> round(est.value, 3), round(est.se, 4), est.n
(0.9, 0.015, 400)
>>> drop = accuracy_drop(estimate_accuracy(np.full(1000, 0.95)), est)
>>> round(drop.value * 100, 1), drop.low > 0
(5.0, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import norm


@dataclass(frozen=True, slots=True)
class Interval:
    """A point value (a share in [0, 1], or a difference of shares) and its interval."""

    value: float
    low: float
    high: float
    se: float
    n: int

    def covers(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def z_of(level: float) -> float:
    """The two-sided normal quantile of ``level`` (1.96 for 0.95)."""
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


def estimate_accuracy(
    confidence: np.ndarray, level: float = 0.95, calibration_se: float = 0.0
) -> Interval:
    """CBPE accuracy of a window from its calibrated max-probabilities, with the
    Poisson-binomial interval of the accuracy those predictions will realize.

    ``calibration_se`` adds, in quadrature, the uncertainty of the calibration itself: the
    temperature was fitted on a finite labelled reference, so the estimate's level carries that
    reference accuracy's standard error."""
    p = np.asarray(confidence, dtype=np.float64)
    p = p[np.isfinite(p)]
    n = len(p)
    if n == 0:
        raise ValueError("no confidences to estimate accuracy from")
    value = float(p.mean())
    se = float(np.hypot(np.sqrt(np.sum(p * (1 - p))) / n, calibration_se))
    half = z_of(level) * se
    return Interval(value, max(value - half, 0.0), min(value + half, 1.0), se, n)


def realized_accuracy(predicted: np.ndarray, labels: np.ndarray, level: float = 0.95) -> Interval:
    """Accuracy on the labelled rows (``labels >= 0``) with a Wilson score interval.

    >>> r = realized_accuracy(np.array([1, 1, 0, 2]), np.array([1, 0, 0, -1]))
    >>> r.n, round(r.value, 3)
    (3, 0.667)
    """
    labels = np.asarray(labels)
    known = labels >= 0
    n = int(known.sum())
    if n == 0:
        raise ValueError("no labelled rows")
    k = float((np.asarray(predicted)[known] == labels[known]).sum())
    value = k / n
    z = z_of(level)
    centre = (value + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(value * (1 - value) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(
        value,
        float(centre - half),
        float(centre + half),
        float(np.sqrt(value * (1 - value) / n)),
        n,
    )


def accuracy_drop(reference: Interval, current: Interval, level: float = 0.95) -> Interval:
    """``reference - current`` (positive: accuracy lost), interval from both standard errors."""
    value = reference.value - current.value
    se = float(np.hypot(reference.se, current.se))
    half = z_of(level) * se
    return Interval(value, value - half, value + half, se, current.n)


def disagrees(estimated: Interval, realized: Interval, tolerance: float) -> bool:
    """Whether labels contradict the estimate: they differ by more than ``tolerance`` (a share)
    and by more than both intervals allow together."""
    gap = abs(realized.value - estimated.value)
    allowed = z_of(0.95) * float(np.hypot(estimated.se, realized.se))
    return gap > max(tolerance, allowed)
