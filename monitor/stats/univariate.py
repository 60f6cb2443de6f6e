"""Two-sample tests and distances on numeric columns, vectorised over columns.

Both samples are sorted once per column, pooled, and the difference of the two empirical
distribution functions is read at every pooled value. From that one pass come the
Kolmogorov-Smirnov statistic (its largest absolute value) and the first Wasserstein distance
(its integral). NaN marks a missing value and is ignored, per column.

References: Smirnov (1939) for the two-sample KS statistic and its limit law; Villani (2009) for
the Wasserstein-1 distance as the L1 distance between distribution functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True, slots=True)
class ColumnTests:
    """Per-column results of :func:`ks_columns`: arrays of shape ``(K,)``."""

    statistic: np.ndarray
    p_value: np.ndarray
    wasserstein: np.ndarray
    n_ref: np.ndarray
    n_cur: np.ndarray


def _as_2d(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"expected a 1-d or 2-d array, got shape {arr.shape}")
    return arr


def ks_pvalue(
    statistic: np.ndarray,
    n_ref: np.ndarray,
    n_cur: np.ndarray,
    method: Literal["fast", "asymp"] = "fast",
) -> np.ndarray:
    """Two-sided p-value of the two-sample KS statistic at effective size ``n m / (n + m)``.

    ``fast`` (default) is Stephens' (1970) corrected Kolmogorov limit,
    ``Q((sqrt(en) + 0.12 + 0.11 / sqrt(en)) D)``, vectorised and cheap; ``asymp`` is exactly
    scipy's ``ks_2samp(method="asymp")`` (the one-sample ``kstwo`` law at ``round(en)``), which
    costs milliseconds per value. Against the exact two-sample p-value both are within 0.03
    (n = m = 100) and 0.005 (n, m >= 1,000).

    >>> d, n = np.array([0.0, 0.1]), np.array([1000, 1000])
    >>> ks_pvalue(d, n, n).round(4).tolist(), ks_pvalue(d, n, n, "asymp").round(4).tolist()
    ([1.0, 0.0001], [1.0, 0.0001])
    """
    from scipy.stats import kstwo, kstwobign

    d = np.asarray(statistic, dtype=np.float64)
    n = np.asarray(n_ref, dtype=np.float64)
    m = np.asarray(n_cur, dtype=np.float64)
    valid = (n > 0) & (m > 0)
    en = np.where(valid, n * m / np.where(valid, n + m, 1.0), 1.0)
    if method == "asymp":
        p = kstwo.sf(d, np.maximum(np.round(en), 1.0))
    elif method == "fast":
        root = np.sqrt(en)
        p = kstwobign.sf((root + 0.12 + 0.11 / root) * d)
    else:
        raise ValueError(f"unknown KS p-value method {method!r}")
    return np.where(valid, np.clip(p, 0.0, 1.0), 1.0)


def ks_columns(
    ref: np.ndarray,
    cur: np.ndarray,
    p_method: Literal["fast", "asymp"] = "fast",
    *,
    ref_sorted: bool = False,
) -> ColumnTests:
    """Two-sample KS test and Wasserstein-1 distance for every column at once.

    Parameters
    ----------
    ref, cur
        ``(n, K)`` and ``(m, K)`` arrays (or 1-d for one column); NaN is a missing value.
    p_method
        How :func:`ks_pvalue` computes the p-value.
    ref_sorted
        ``ref`` is already sorted per column (NaN last), as profiles store it: skips a sort.

    Returns
    -------
    ColumnTests
        KS statistic ``D``, its asymptotic two-sided p-value, the (unnormalised) Wasserstein-1
        distance and the non-missing counts, each of shape ``(K,)``. A column missing on
        either side gets ``D = 0``, ``p = 1``, distance 0.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(500, 2))
    >>> cur = ref + np.array([0.0, 1.0])
    >>> res = ks_columns(ref, cur)
    >>> bool(res.p_value[0] == 1.0), bool(res.p_value[1] < 1e-6), np.round(res.wasserstein, 3)
    (True, True, array([0., 1.]))
    """
    a, b = _as_2d(ref), _as_2d(cur)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"column counts differ: {a.shape[1]} vs {b.shape[1]}")
    n_ref = np.sum(~np.isnan(a), axis=0)
    n_cur = np.sum(~np.isnan(b), axis=0)
    # Work on (K, n + m) rows, contiguous. Each side sorted, then one stable merge (linear
    # for two sorted runs); a reference sorted once at fit time skips its sort.
    a_rows = np.ascontiguousarray(a.T) if ref_sorted else np.sort(a.T, axis=1)
    pooled = np.concatenate([a_rows, np.sort(b.T, axis=1)], axis=1)
    order = np.argsort(pooled, axis=1, kind="stable")
    values = np.take_along_axis(pooled, order, axis=1)
    missing = np.isnan(values)
    from_ref = order < len(a)
    # Integer counts keep the distribution functions exact (both reach exactly 1).
    cum_ref = np.cumsum(from_ref & ~missing, axis=1)
    cum_cur = np.cumsum(~from_ref & ~missing, axis=1)
    diff = np.abs(cum_ref / np.maximum(n_ref, 1)[:, None] - cum_cur / np.maximum(n_cur, 1)[:, None])
    # Only the last of a run of tied values is a point where both ECDFs are defined; the
    # order inside a run does not change the cumulative sum at its end.
    gaps = np.diff(values, axis=1)
    last_of_tie = np.ones(values.shape, dtype=bool)
    last_of_tie[:, :-1] = gaps != 0
    last_of_tie &= ~missing
    statistic = np.max(np.where(last_of_tie, diff, 0.0), axis=1, initial=0.0)
    gaps[np.isnan(gaps)] = 0.0
    wasserstein = np.einsum("kn,kn->k", diff[:, :-1], gaps)
    empty = (n_ref == 0) | (n_cur == 0)
    statistic = np.where(empty, 0.0, np.clip(statistic, 0.0, 1.0))
    wasserstein = np.where(empty, 0.0, wasserstein)
    return ColumnTests(
        statistic=statistic,
        p_value=ks_pvalue(statistic, n_ref, n_cur, p_method),
        wasserstein=wasserstein,
        n_ref=n_ref,
        n_cur=n_cur,
    )


def wasserstein_norm(ref: np.ndarray, cur: np.ndarray, min_scale: float = 1e-3) -> np.ndarray:
    """Wasserstein-1 distance per column divided by the reference's standard deviation.

    The scale is ``max(std(ref), min_scale)``, as Evidently's ``wasserstein`` stat test does, so
    the value reads as "how many reference standard deviations the mass moved".

    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(0, 2, size=20_000)
    >>> round(float(wasserstein_norm(ref, ref + 1.0)[0]), 2)
    0.5
    """
    a = _as_2d(ref)
    scale = np.maximum(np.nan_to_num(np.nanstd(a, axis=0), nan=0.0), min_scale)
    return np.asarray(ks_columns(a, cur).wasserstein / scale)
