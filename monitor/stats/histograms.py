"""Histograms and the distances between them: PSI and Jensen-Shannon.

Distances take *shares* (rows that sum to one) so they work the same on binned numeric data and
on category frequencies. :func:`evidently_bins` reproduces Evidently's binning (Sturges edges on
the pooled sample, or one bin per distinct value) for side-by-side comparisons.

References: Siddiqi (2006), *Credit Risk Scorecards*, for the population stability index; Lin
(1991), "Divergence measures based on the Shannon entropy", for Jensen-Shannon.
"""

from __future__ import annotations

import numpy as np


def quantile_edges(ref: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (``n_bins - 1`` distinct values at most).

    The outer bins are open, so values outside the reference's range still land somewhere.

    >>> quantile_edges(np.arange(100.0), 4)
    array([24.75, 49.5 , 74.25])
    >>> quantile_edges(np.ones(10), 4)
    array([1.])
    """
    x = np.asarray(ref, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return np.zeros(0)
    qs = np.quantile(x, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(qs)


def bin_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``x`` in the ``len(edges) + 1`` bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.

    NaN values are not counted.

    >>> bin_counts(np.array([0.0, 1.0, 1.5, 3.0, np.nan]), np.array([1.0, 2.0]))
    array([2, 1, 1])
    """
    v = np.asarray(x, dtype=np.float64)
    v = v[~np.isnan(v)]
    idx = np.searchsorted(edges, v, side="left")
    return np.bincount(idx, minlength=len(edges) + 1)


def shares(counts: np.ndarray, pseudo_count: float = 0.0) -> np.ndarray:
    """Counts to shares along the last axis, with an optional pseudo-count per bin.

    An all-zero row becomes uniform rather than NaN.

    >>> shares(np.array([3, 1, 0]), 0.5)
    array([0.63636364, 0.27272727, 0.09090909])
    """
    c = np.asarray(counts, dtype=np.float64) + pseudo_count
    total = c.sum(axis=-1, keepdims=True)
    uniform = np.full_like(c, 1.0 / max(c.shape[-1], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, c / np.where(total > 0, total, 1.0), uniform)


def fill_zeros(p: np.ndarray) -> np.ndarray:
    """Evidently's zero filling: empty bins get a small share, so logarithms stay finite.

    The share is 1e-4, or a millionth of the smallest non-zero share when that is <= 1e-4.

    >>> fill_zeros(np.array([0.5, 0.5, 0.0]))
    array([5.e-01, 5.e-01, 1.e-04])
    """
    out = np.asarray(p, dtype=np.float64).copy()
    nonzero = out[out != 0]
    if nonzero.size == 0:
        return np.full_like(out, 1e-4)
    smallest = nonzero.min()
    out[out == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return out


def psi(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Population stability index ``sum((r - c) * ln(r / c))`` along the last axis.

    Takes shares with no zeros (see :func:`fill_zeros` or ``shares(..., pseudo_count)``).
    Symmetric, non-negative, zero iff the shares are equal.

    >>> round(float(psi(np.array([0.5, 0.5]), np.array([0.4, 0.6]))), 4)
    0.0405
    """
    r = np.asarray(ref, dtype=np.float64)
    c = np.asarray(cur, dtype=np.float64)
    return np.asarray(np.sum((r - c) * np.log(r / c), axis=-1))


def js_distance(ref: np.ndarray, cur: np.ndarray, base: float | None = None) -> np.ndarray:
    """Jensen-Shannon distance (the square root of the divergence) along the last axis.

    Like ``scipy.spatial.distance.jensenshannon``: inputs are normalised to sum to one, zeros
    are allowed, natural logarithm unless ``base`` is given. Bounded by ``sqrt(ln 2)`` (by 1
    with ``base=2``), symmetric.

    >>> round(float(js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0]), base=2)), 6)
    1.0
    """
    p = shares(ref)
    q = shares(cur)
    m = (p + q) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0)
    div = (kl_p.sum(axis=-1) + kl_q.sum(axis=-1)) / 2.0
    if base is not None:
        div = div / np.log(base)
    return np.asarray(np.sqrt(np.maximum(div, 0.0)))


def evidently_bins(
    ref: np.ndarray, cur: np.ndarray, numerical: bool = True, fill: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current shares binned the way Evidently 0.7 bins them.

    Numeric data with more than 20 distinct reference values get Sturges edges over the pooled
    sample; anything else gets one bin per distinct value. ``fill`` applies
    :func:`fill_zeros` (Evidently fills for PSI, not for Jensen-Shannon).

    >>> r, c = evidently_bins(np.array([0, 0, 1]), np.array([1, 1, 2]), numerical=False)
    >>> r.round(4).tolist(), c.round(4).tolist()
    ([0.6667, 0.3333, 0.0001], [0.0001, 0.6667, 0.3333])
    """
    a = np.asarray(ref)
    b = np.asarray(cur)
    a_ok = a[~np.isnan(a)] if a.dtype.kind == "f" else a
    b_ok = b[~np.isnan(b)] if b.dtype.kind == "f" else b
    if numerical and np.unique(a_ok).size > 20:
        edges = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
        r = np.histogram(a, edges)[0] / len(a)
        c = np.histogram(b, edges)[0] / len(b)
    else:
        keys = np.union1d(a_ok, b_ok)
        r = np.array([np.sum(a_ok == k) for k in keys], dtype=np.float64) / len(a)
        c = np.array([np.sum(b_ok == k) for k in keys], dtype=np.float64) / len(b)
    if fill:
        r, c = fill_zeros(r), fill_zeros(c)
    return r, c
