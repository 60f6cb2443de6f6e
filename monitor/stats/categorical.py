"""Tests and effect sizes for counts over categories (predicted classes, rates).

Counts are aligned arrays indexed by category; a category absent on one side has count 0.

References: Pearson (1900) for the chi-square test; Fisher (1922) for the exact 2 x 2 test;
Cohen (1988), *Statistical Power Analysis*, for the effect sizes w and h; Bergsma (2013), "A
bias-correction for Cramér's V and Tschuprow's T", for the bias-corrected w.
"""

from __future__ import annotations

import numpy as np


def align_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad two count vectors with zeros to the same length (categories missing on one side).

    >>> align_counts(np.array([3, 1]), np.array([0, 1, 2]))
    (array([3., 1., 0.]), array([0., 1., 2.]))
    """
    a = np.asarray(ref, dtype=np.float64)
    b = np.asarray(cur, dtype=np.float64)
    k = max(a.size, b.size)
    return np.pad(a, (0, k - a.size)), np.pad(b, (0, k - b.size))


def chi2_homogeneity(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, int]:
    """Pearson's chi-square test that two count vectors come from one distribution.

    The 2 x K contingency test (as ``scipy.stats.chi2_contingency(correction=False)``), with
    categories empty on both sides dropped, so a class never seen in the reference is a valid
    category rather than a division by zero. Returns ``(statistic, p_value, dof)``; with fewer
    than two non-empty categories or an empty side, ``(0.0, 1.0, 0)``.

    >>> stat, p, dof = chi2_homogeneity(np.array([50, 50, 0]), np.array([30, 60, 10]))
    >>> round(stat, 3), round(p, 6), dof
    (15.909, 0.000351, 2)
    """
    from scipy.stats import chi2

    a, b = align_counts(ref, cur)
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    n, m = a.sum(), b.sum()
    if a.size < 2 or n == 0 or m == 0:
        return 0.0, 1.0, 0
    col = a + b
    total = n + m
    exp_a = col * n / total
    exp_b = col * m / total
    stat = float(np.sum((a - exp_a) ** 2 / exp_a) + np.sum((b - exp_b) ** 2 / exp_b))
    dof = int(a.size - 1)
    return stat, float(chi2.sf(stat, dof)), dof


def chi2_goodness_of_fit(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Chi-square test of ``cur`` counts against ``ref`` counts scaled to ``cur``'s size.

    Evidently's ``chisquare`` stat test: treats the reference frequencies as exact, so it
    over-rejects when the reference is not much larger than the window; a category with current
    counts but no reference counts gives an infinite statistic. Prefer
    :func:`chi2_homogeneity`; this one exists for comparison.

    >>> stat, p = chi2_goodness_of_fit(np.array([50, 50]), np.array([40, 60]))
    >>> round(stat, 3), round(p, 4)
    (4.0, 0.0455)
    """
    from scipy.stats import chisquare

    a, b = align_counts(ref, cur)
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    expected = a * b.sum() / a.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        res = chisquare(b, expected)
    return float(res.statistic), float(res.pvalue)


def cohens_w(ref_shares: np.ndarray, cur_shares: np.ndarray) -> np.ndarray:
    """Cohen's w of the 2 x K table with equal row weights: ``sqrt(sum (r-c)^2 / (2 (r+c)))``.

    Symmetric, in [0, 1] (1 when the supports are disjoint), defined when a category is missing
    on one side. Cohen's rule of thumb: 0.1 small, 0.3 medium, 0.5 large. Works along the last
    axis.

    >>> round(float(cohens_w(np.array([0.1, 0.9]), np.array([0.02, 0.98]))), 4)
    0.1684
    """
    r = np.asarray(ref_shares, dtype=np.float64)
    c = np.asarray(cur_shares, dtype=np.float64)
    s = r + c
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(s > 0, (r - c) ** 2 / (2.0 * np.where(s > 0, s, 1.0)), 0.0)
    return np.asarray(np.sqrt(np.clip(terms.sum(axis=-1), 0.0, 1.0)))


def cohens_w_adjusted(ref: np.ndarray, cur: np.ndarray) -> float:
    """Cohen's w of two count vectors, corrected for the upward bias of sampling noise.

    Two samples of one distribution over ``K`` categories differ by chance: the plug-in
    :func:`cohens_w` has ``E[w^2] ~ (K - 1) (1/n + 1/m) / 4``, so a floor on w alone alarms on a
    large enough clean window whenever the reference is small. This subtracts that expectation
    (Bergsma 2013): ``sqrt(max(0, w^2 - (K - 1) (1/n + 1/m) / 4))`` over the categories present
    on either side; with equal sizes it is ``sqrt(max(0, chi2 - df) / N)``. 0 with fewer than two
    categories or an empty side.

    >>> round(cohens_w_adjusted(np.array([100, 100]), np.array([60, 140])), 4)
    0.1979
    >>> cohens_w_adjusted(np.array([100, 100]), np.array([98, 102]))
    0.0
    """
    a, b = align_counts(ref, cur)
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    n, m = float(a.sum()), float(b.sum())
    if a.size < 2 or n == 0 or m == 0:
        return 0.0
    w2 = float(cohens_w(a / n, b / m)) ** 2
    bias = (a.size - 1) * (1.0 / n + 1.0 / m) / 4.0
    return float(np.sqrt(max(0.0, w2 - bias)))


def cohens_h(ref_rate: np.ndarray, cur_rate: np.ndarray) -> np.ndarray:
    """Cohen's h between proportions: ``|2 asin sqrt(c) - 2 asin sqrt(r)|``, in [0, pi].

    >>> round(float(cohens_h(np.array(0.10), np.array(0.02))), 4)
    0.3597
    """
    r = np.clip(np.asarray(ref_rate, dtype=np.float64), 0.0, 1.0)
    c = np.clip(np.asarray(cur_rate, dtype=np.float64), 0.0, 1.0)
    return np.abs(2.0 * np.arcsin(np.sqrt(c)) - 2.0 * np.arcsin(np.sqrt(r)))


def two_proportion_test(
    ref_hits: np.ndarray, n_ref: float, cur_hits: np.ndarray, n_cur: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test, vectorised; returns ``(z, two-sided p)``.

    Where the pooled rate is 0 or 1 (nothing to compare) ``z = 0`` and ``p = 1``. Equivalent to
    the 2 x 2 chi-square test without continuity correction.

    >>> z, p = two_proportion_test(np.array([10, 0]), 100, np.array([25, 0]), 100)
    >>> np.round(z, 3), np.round(p, 4)
    (array([2.791, 0.   ]), array([0.0052, 1.    ]))
    """
    from scipy.stats import norm

    a = np.asarray(ref_hits, dtype=np.float64)
    b = np.asarray(cur_hits, dtype=np.float64)
    if n_ref <= 0 or n_cur <= 0:
        return np.zeros_like(a), np.ones_like(a)
    pooled = (a + b) / (n_ref + n_cur)
    var = pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, (b / n_cur - a / n_ref) / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)
    return z, 2.0 * norm.sf(np.abs(z))


#: Below this expected count in any cell of a 2 x 2 table the z-test's normal approximation is
#: not trusted and :func:`proportion_test` uses Fisher's exact test (Cochran's rule).
MIN_EXPECTED = 5.0


def proportion_test(
    ref_hits: np.ndarray,
    n_ref: float,
    cur_hits: np.ndarray,
    n_cur: float,
    min_expected: float = MIN_EXPECTED,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-proportion test that is valid for small counts; returns ``(z, two-sided p)``.

    Each comparison uses :func:`two_proportion_test` when every expected cell count of its
    2 x 2 table is at least ``min_expected``, and Fisher's exact test
    (``scipy.stats.fisher_exact``) otherwise: 0 of 360 against 1 of 10 is p = 6e-9 by the
    z-test but 0.027 exactly. ``z`` is always the pooled z statistic (0 where undefined).

    >>> z, p = proportion_test(np.array([0, 30]), 360, np.array([1, 8]), 10)
    >>> np.round(p, 4).tolist()
    [0.027, 0.0]
    """
    from scipy.stats import fisher_exact

    a = np.asarray(ref_hits, dtype=np.float64)
    b = np.asarray(cur_hits, dtype=np.float64)
    z, p = two_proportion_test(a, n_ref, b, n_cur)
    if n_ref <= 0 or n_cur <= 0:
        return z, p
    hits = a + b
    total = n_ref + n_cur
    small = np.minimum(hits, total - hits) * min(n_ref, n_cur) / total < min_expected
    p = np.array(p, dtype=np.float64)
    for j in np.flatnonzero(small & (hits > 0) & (hits < total)):
        table = [[int(a[j]), int(n_ref - a[j])], [int(b[j]), int(n_cur - b[j])]]
        p.flat[j] = float(fisher_exact(table).pvalue)
    return z, p
