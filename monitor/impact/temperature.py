"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

One scalar ``T`` divides the logits; the logged probabilities stand in for the logits (a softmax
of ``log p`` gives ``p`` back, so ``softmax(log p / T)`` is temperature scaling of the model's own
logits up to a per-row constant). ``T`` minimises the negative log-likelihood of the labelled
reference; the expected calibration error (ECE, 15 equal-width bins of the max probability, as in
the paper) says how far confidence was from accuracy before and after.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> logits = rng.normal(size=(4000, 5)) * 3
>>> labels = np.array([rng.choice(5, p=p) for p in softmax(logits)])
>>> overconfident = softmax(2.0 * logits)
>>> round(fit_temperature(overconfident, labels), 1)
2.0
>>> ece(overconfident, labels) > 0.05 > ece(apply_temperature(overconfident, 2.0), labels)
True
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

#: Probabilities are clipped here before the log, so a logged 0 stays finite.
EPS = 1e-12
#: ``log T`` is searched in this range (T from ~0.02 to ~55).
LOG_T_BOUNDS = (-4.0, 4.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` per row: ``T > 1`` softens, ``T < 1`` sharpens, ``T = 1`` is ``p``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0))
    return softmax(logp / temperature)


def nll(probs: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``probs`` scaled by ``temperature``."""
    scaled = apply_temperature(probs, temperature)
    picked = scaled[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, EPS, 1.0)).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``labels`` (bounded scalar search on log T)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("temperature scaling needs at least one labelled row")
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0))
    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float((np.log(np.exp(z).sum(axis=1)) - z[rows, labels]).mean())

    found = minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error: ``sum_b |B_b|/n * |acc(B_b) - conf(B_b)|`` over equal-width
    bins of the max probability (right-closed, the first bin includes 0)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    gap = np.bincount(bins, weights=correct - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / n)
