"""Maximum mean discrepancy with a Gaussian kernel and a permutation test.

Cost is bounded: each sample is subsampled to ``max_rows`` rows, the kernel is approximated by
random Fourier features, and all permutations are evaluated at once as one matrix product, so a
test costs ``O(max_rows * (dim + n_permutations) * n_features)`` whatever the window size. A
permutation test on a random subsample is exact (its false-alarm rate is at most alpha) at any
window size.

Pass ``device`` (``"cpu"``, ``"cuda"``) to run the permutation products with torch; the default
is numpy.

References: Gretton et al. (2012), "A kernel two-sample test", JMLR 13 (MMD, the median
heuristic); Rahimi & Recht (2007), "Random features for large-scale kernel machines".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True, slots=True)
class MMDTest:
    """Result of :func:`mmd_test`: unbiased MMD^2, permutation p-value, rows used."""

    statistic: float
    p_value: float
    n_x: int
    n_y: int


def subsample(x: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_rows`` rows of ``x``, drawn without replacement (all rows if fewer).

    >>> subsample(np.arange(10)[:, None], 3, np.random.default_rng(0)).shape
    (3, 1)
    """
    if len(x) <= max_rows:
        return x
    return x[np.sort(rng.choice(len(x), size=max_rows, replace=False))]


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xx = np.einsum("ij,ij->i", x, x)
    yy = np.einsum("ij,ij->i", y, y)
    return np.asarray(np.maximum(xx[:, None] + yy[None, :] - 2.0 * (x @ y.T), 0.0))


def median_gamma(x: np.ndarray, max_rows: int = 1000, seed: int = 0) -> float:
    """Gaussian-kernel ``gamma = 1 / median(squared distance)`` over a subsample of ``x``.

    >>> x = np.random.default_rng(0).normal(size=(400, 8))
    >>> round(median_gamma(x), 3)
    0.068
    """
    xs = subsample(np.asarray(x, dtype=np.float64), max_rows, np.random.default_rng(seed))
    d = _sq_dists(xs, xs)[np.triu_indices(len(xs), k=1)]
    med = float(np.median(d)) if d.size else 0.0
    return 1.0 / med if med > 0 else 1.0


def rbf_kernel(x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    """Gaussian kernel matrix ``exp(-gamma * |x_i - y_j|^2)``.

    >>> rbf_kernel(np.zeros((1, 2)), np.array([[0.0, 0.0], [1.0, 1.0]]), 0.5).round(4)
    array([[1.    , 0.3679]])
    """
    return np.exp(-gamma * _sq_dists(np.asarray(x, np.float64), np.asarray(y, np.float64)))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Unbiased estimate of the squared MMD between the samples (can be slightly negative).

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(200, 4)), rng.normal(1.0, 1.0, size=(200, 4))
    >>> mmd2_unbiased(a, b, 0.125) > 0.1 > abs(mmd2_unbiased(a, a[::-1], 0.125))
    True
    """
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return 0.0
    kxx, kyy, kxy = rbf_kernel(x, x, gamma), rbf_kernel(y, y, gamma), rbf_kernel(x, y, gamma)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2.0 * kxy.mean()
    )


def _quadratic_forms(matrix: np.ndarray, weights: np.ndarray, device: str | None) -> np.ndarray:
    """``w_p^T K w_p`` for a kernel matrix, or ``|w_p^T Phi|^2`` for a feature matrix."""
    square = matrix.shape[0] == matrix.shape[1] and matrix.shape[0] == weights.shape[1]
    if device is None:
        prod = weights @ matrix
        if square:
            return np.asarray(np.einsum("pn,pn->p", prod, weights))
        return np.asarray(np.einsum("pf,pf->p", prod, prod))
    import torch

    k = torch.from_numpy(matrix).to(device)
    w = torch.as_tensor(np.array(weights)).to(device)
    prod_t = w @ k
    out = (prod_t * w).sum(dim=1) if square else (prod_t * prod_t).sum(dim=1)
    return np.asarray(out.cpu().numpy())


@lru_cache(maxsize=16)
def _permutation_weights(n: int, m: int, n_permutations: int, seed: int) -> np.ndarray:
    """Row 0: the observed split's weights (1/n, -1/m); then one row per permutation.

    Deterministic for its arguments, so windows of equal size share them (cached, read-only).
    """
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    perms = np.random.default_rng([seed, n, m]).permuted(np.tile(base, (n_permutations, 1)), axis=1)
    out = np.vstack([base, perms])
    out.flags.writeable = False
    return out


def fourier_features(x: np.ndarray, gamma: float, n_features: int, seed: int) -> np.ndarray:
    """Random Fourier features of the Gaussian kernel (Rahimi & Recht 2007).

    ``phi(x) . phi(y)`` approximates ``exp(-gamma |x - y|^2)``, with error of order
    ``1 / sqrt(n_features)``.

    >>> x = np.random.default_rng(0).normal(size=(2, 3))
    >>> phi = fourier_features(x, 0.2, 20_000, seed=0)
    >>> round(float(phi[0] @ phi[1]), 1) == round(float(rbf_kernel(x[:1], x[1:], 0.2)[0, 0]), 1)
    True
    """
    rng = np.random.default_rng(seed)
    a = np.asarray(x, dtype=np.float32)
    omega = rng.normal(0.0, np.sqrt(2.0 * gamma), size=(a.shape[1], n_features)).astype(np.float32)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n_features).astype(np.float32)
    return np.asarray(np.sqrt(np.float32(2.0 / n_features)) * np.cos(a @ omega + phase))


def mmd_test(
    x: np.ndarray,
    y: np.ndarray,
    gamma: float | None = None,
    *,
    n_permutations: int = 200,
    max_rows: int = 1000,
    n_features: int | None = 256,
    seed: int = 0,
    device: str | None = None,
) -> MMDTest:
    """Two-sample MMD permutation test on at most ``max_rows`` rows of each sample.

    With ``n_features`` set (the default) the Gaussian kernel is approximated by that many
    random Fourier features, so the test costs ``O((n + m) * n_features * n_permutations)``;
    with ``n_features=None`` the exact ``(n + m)^2`` kernel matrix is used. All permutations are
    evaluated at once as one matrix product. The permutation statistic is the biased
    (V-statistic) MMD^2; the reported ``statistic`` is the unbiased MMD^2 of the subsamples.
    ``gamma`` defaults to the median heuristic on the pooled subsample. The p-value is
    ``(1 + #{permuted >= observed}) / (1 + n_permutations)``, so the test is exact.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(300, 16))
    >>> same = mmd_test(ref, rng.normal(size=(300, 16)), seed=1)
    >>> moved = mmd_test(ref, rng.normal(0.3, 1.0, size=(300, 16)), seed=1)
    >>> same.p_value > 0.05, moved.p_value < 0.01
    (True, True)
    """
    rng = np.random.default_rng(seed)
    xs = subsample(np.asarray(x, dtype=np.float64), max_rows, rng)
    ys = subsample(np.asarray(y, dtype=np.float64), max_rows, rng)
    n, m = len(xs), len(ys)
    if n < 2 or m < 2:
        return MMDTest(statistic=0.0, p_value=1.0, n_x=n, n_y=m)
    pooled = np.concatenate([xs, ys])
    g = gamma if gamma is not None else median_gamma(pooled, seed=seed)
    weights = _permutation_weights(n, m, n_permutations, seed)
    if n_features is None:
        matrix = rbf_kernel(pooled, pooled, g)
        kxx, kyy, kxy = matrix[:n, :n], matrix[n:, n:], matrix[:n, n:]
        sum_xx, sum_yy = kxx.sum() - np.trace(kxx), kyy.sum() - np.trace(kyy)
        cross = kxy.mean()
    else:
        matrix = fourier_features(pooled, g, n_features, seed).astype(np.float64)
        fx, fy = matrix[:n], matrix[n:]
        sx, sy = fx.sum(axis=0), fy.sum(axis=0)
        sum_xx = sx @ sx - np.einsum("ij,ij->", fx, fx)
        sum_yy = sy @ sy - np.einsum("ij,ij->", fy, fy)
        cross = (sx / n) @ (sy / m)
        weights = weights.astype(np.float32)  # a copy: the cached array stays float64
        matrix = matrix.astype(np.float32)
    stats = _quadratic_forms(matrix, weights, device)
    observed = stats[0]
    tol = 1e-6 * abs(observed) + 1e-12
    p_value = (1.0 + np.sum(stats[1:] >= observed - tol)) / (1.0 + n_permutations)
    unbiased = sum_xx / (n * (n - 1)) + sum_yy / (m * (m - 1)) - 2.0 * cross
    return MMDTest(statistic=float(unbiased), p_value=float(p_value), n_x=n, n_y=m)


def fit_pca(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of ``x``: ``(mean (D,), components (k, D), explained variance ratio (k,))``.

    >>> x = np.random.default_rng(0).normal(size=(200, 5)) * np.array([5, 1, 1, 1, 1])
    >>> mean, comps, ratio = fit_pca(x, 2)
    >>> comps.shape, bool(abs(comps[0, 0]) > 0.99)
    ((2, 5), True)
    """
    a = np.asarray(x, dtype=np.float64)
    mean = a.mean(axis=0)
    _, s, vt = np.linalg.svd(a - mean, full_matrices=False)
    k = max(1, min(n_components, vt.shape[0]))
    var = s**2
    total = var.sum()
    ratio = var[:k] / total if total > 0 else np.zeros(k)
    return mean, vt[:k], ratio


def mmd_rff_gaussian(
    x: np.ndarray, y: np.ndarray, gamma: float, n_features: int, seed: int
) -> MMDTest:
    """Linear-time MMD test on all rows: random Fourier features with an analytic null.

    The statistic is the squared distance of the two feature means, ``|mean phi(x) - mean
    phi(y)|^2`` (the biased MMD^2 of the approximated kernel). Under no shift the difference of
    means is close to Gaussian with covariance ``(1/n + 1/m) S`` (``S`` the pooled feature
    covariance), so the statistic is a weighted sum of chi-square(1) variables with weights the
    eigenvalues of that matrix; the p-value matches its first two moments with a scaled
    chi-square (Satterthwaite). The cost is ``O((n + m) n_features (dim + n_features))``, no
    permutations; it needs windows large enough for the central limit theorem (the embedding
    family uses permutations below a few thousand rows). The reported statistic is the
    unbiased MMD^2. The reference side (``x``, a profile's fixed sample) enters only through
    its feature sum and Gram matrix, computed once per sample (:func:`feature_moments`), so a
    window costs its own features, one ``F x F`` Gram product and one eigendecomposition.

    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(size=(2000, 16))
    >>> same = mmd_rff_gaussian(ref, rng.normal(size=(5000, 16)), 0.03, 128, seed=1)
    >>> moved = mmd_rff_gaussian(ref, rng.normal(0.05, 1.0, size=(5000, 16)), 0.03, 128, seed=1)
    >>> same.p_value > 0.05, moved.p_value < 0.01
    (True, True)
    """
    from scipy.stats import chi2

    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return MMDTest(statistic=0.0, p_value=1.0, n_x=n, n_y=m)
    ref = feature_moments(x, gamma, n_features, seed)
    win = _moments(fourier_features(y, gamma, n_features, seed))
    sx, sy = ref.total, win.total
    diff = sx / n - sy / m
    observed = float(diff @ diff)
    pooled = sx + sy
    cov = (ref.gram + win.gram - np.outer(pooled, pooled) / (n + m)) / (n + m - 1)
    lam = np.clip(np.linalg.eigvalsh(cov), 0.0, None) * (1.0 / n + 1.0 / m)
    s1, s2 = float(lam.sum()), float((lam**2).sum())
    p_value = float(chi2.sf(observed * s1 / s2, s1 * s1 / s2)) if s2 > 0 else 1.0
    sum_xx = sx @ sx - np.trace(ref.gram)
    sum_yy = sy @ sy - np.trace(win.gram)
    unbiased = sum_xx / (n * (n - 1)) + sum_yy / (m * (m - 1)) - 2.0 * (sx / n) @ (sy / m)
    return MMDTest(statistic=float(unbiased), p_value=p_value, n_x=n, n_y=m)


@dataclass(frozen=True, slots=True)
class FeatureMoments:
    """Sum and Gram matrix (float64) of a sample's random Fourier features."""

    total: np.ndarray  # (F,)
    gram: np.ndarray  # (F, F): phi^T phi


def _moments(phi: np.ndarray) -> FeatureMoments:
    # float32 products (the features are float32), accumulated into float64 moments.
    return FeatureMoments(
        phi.sum(axis=0, dtype=np.float64), (phi.T @ phi).astype(np.float64, copy=False)
    )


_MOMENTS: dict[tuple[int, float, int, int], tuple[np.ndarray, FeatureMoments]] = {}
#: Reference samples whose feature moments are kept (one per active profile and family).
MOMENTS_CACHE = 16


def feature_moments(x: np.ndarray, gamma: float, n_features: int, seed: int) -> FeatureMoments:
    """The feature moments of the reference sample ``x``, computed once per array.

    A profile's reference sample does not change, so every window scored against it reuses
    them (keyed by the array's identity, which the cache holds on to, and the feature
    parameters; the oldest of :data:`MOMENTS_CACHE` entries goes first).
    """
    key = (id(x), float(gamma), n_features, seed)
    hit = _MOMENTS.get(key)
    if hit is not None and hit[0] is x:
        return hit[1]
    moments = _moments(fourier_features(x, gamma, n_features, seed))
    if len(_MOMENTS) >= MOMENTS_CACHE:
        _MOMENTS.pop(next(iter(_MOMENTS)))
    _MOMENTS[key] = (x, moments)
    return moments
