"""Per-log outlier scores: Mahalanobis distance to the reference, in embedding space.

The score of a log is its Mahalanobis distance from the reference mean, with a Ledoit-Wolf
shrunk covariance (Ledoit & Wolf, "A well-conditioned estimator for large-dimensional covariance
matrices", 2004) so a 64-d embedding fitted on a few hundred logs stays well conditioned. The
model is fitted on one half of the reference; its ``threshold`` is a quantile of the scores of
the other, held-out half, so "above the threshold" means "rarer than ``quantile`` of reference
logs" without the in-sample optimism. Embeddings are used when the logs carry them, else the
pixel statistics; a log with a missing value gets NaN.

The interface is two functions over a :class:`~monitor.batch.LogBatch`, :func:`fit_outliers` and
:func:`score_outliers`; another scorer (a partial-shift detector's own) can replace them.

>>> import numpy as np
>>> from monitor.detectors.simulate import synthetic_batch
>>> ref = synthetic_batch(600, dim=16, seed=0)
>>> model = fit_outliers(ref)
>>> model.source, model.mean.shape
('embedding', (16,))
>>> far = np.asarray(ref.embeddings)[:5] + 10.0
>>> bool((outlier_scores(model, far) > model.threshold).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from monitor.batch import LogBatch

Source = Literal["embedding", "pixel"]
#: Below this many reference rows the model is fitted and thresholded on all of them.
MIN_SPLIT = 40


@dataclass(frozen=True)
class OutlierModel:
    """What scoring needs: which features, their centring/scaling, the whitening matrix."""

    source: Source
    columns: np.ndarray  # (K,) indices of the features used (pixel stats may drop some)
    mean: np.ndarray  # (K,)
    scale: np.ndarray  # (K,) reference standard deviations
    whiten: np.ndarray  # (K, K): inverse Cholesky factor of the shrunk covariance
    threshold: float  # ``quantile`` of held-out reference scores
    quantile: float
    shrinkage: float
    width: int  # number of features the model was fitted on (columns index into these)


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(shrunk covariance, shrinkage) of the rows of ``x`` (centred here); same as
    ``sklearn.covariance.ledoit_wolf``."""
    x = np.asarray(x, dtype=np.float64)
    n, p = x.shape
    x = x - x.mean(axis=0)
    emp = x.T @ x / n
    mu = np.trace(emp) / p
    x2 = x**2
    beta_ = float(np.sum(x2.T @ x2))
    delta_ = float(np.sum(emp**2))
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * np.trace(emp) + p * mu**2) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    return (1 - shrinkage) * emp + shrinkage * mu * np.eye(p), float(shrinkage)


def features_of(batch: LogBatch) -> tuple[Source, np.ndarray] | None:
    """The features outlier scores are computed on: embeddings, else pixel statistics."""
    if batch.embeddings is not None and np.isfinite(batch.embeddings).any():
        return "embedding", np.asarray(batch.embeddings, dtype=np.float64)
    if batch.pixel is not None and np.isfinite(batch.pixel).any():
        return "pixel", np.asarray(batch.pixel, dtype=np.float64)
    return None


def _whitened(model: OutlierModel, x: np.ndarray) -> np.ndarray:
    # ((x - mean) / scale) @ whiten.T, the scaling folded into the matrix; the product in
    # float32 on centred rows (scores are compared with a threshold, 1e-6 relative is plenty).
    w = (model.whiten / model.scale).astype(np.float32)
    whole = len(model.columns) == x.shape[1] and bool(
        (model.columns == np.arange(x.shape[1])).all()
    )
    centred = (x if whole else x[:, model.columns]) - model.mean.astype(np.float32)
    out: np.ndarray = centred.astype(np.float32, copy=False) @ w.T
    return out


def outlier_scores(model: OutlierModel, x: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each row of ``x`` (all features, as :func:`features_of` gives);
    NaN where a used feature is missing."""
    z = _whitened(model, np.asarray(x))
    scores: np.ndarray = np.sqrt(np.einsum("ij,ij->i", z, z, dtype=np.float64))
    return scores


def fit_outliers(batch: LogBatch, quantile: float = 0.99, seed: int = 0) -> OutlierModel | None:
    """Fit on half the reference, threshold at ``quantile`` of the other half (None when the
    logs carry neither embeddings nor pixel statistics)."""
    found = features_of(batch)
    if found is None:
        return None
    source, x = found
    columns = np.flatnonzero(np.isfinite(x).any(axis=0))
    x = x[np.isfinite(x[:, columns]).all(axis=1)]
    if len(x) < 3:
        return None
    order = np.random.default_rng(seed).permutation(len(x))
    fit_idx, hold_idx = (order, order) if len(x) < MIN_SPLIT else np.array_split(order, 2)
    fit = x[fit_idx][:, columns]
    mean = fit.mean(axis=0)
    scale = fit.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    cov, shrinkage = ledoit_wolf((fit - mean) / scale)
    whiten = np.linalg.inv(np.linalg.cholesky(cov + 1e-9 * np.eye(len(columns))))
    width = x.shape[1]
    model = OutlierModel(
        source, columns, mean, scale, whiten, float("inf"), quantile, shrinkage, width
    )
    threshold = float(np.quantile(outlier_scores(model, x[hold_idx]), quantile))
    return replace(model, threshold=threshold)


def held_above(held: int, quantile: float) -> int:
    """How many of ``held`` held-out scores lie strictly above their ``quantile`` (numpy's
    linear interpolation puts it between the sorted scores ``floor(q (held - 1))`` and the next).

    >>> held_above(5000, 0.99)
    50
    """
    return int(held - np.floor(quantile * (held - 1)) - 1)


def exceedance_p_value(above: int, n: int, held: int, quantile: float) -> float:
    """One-sided exact p-value of ``above`` of ``n`` window scores over a threshold that is the
    ``quantile`` of ``held`` held-out reference scores (larger counts are the alternative).

    Exact for exchangeable scores: the threshold lies at or above the ``k + 1``-th largest
    held-out score (``k`` = :func:`held_above`), and "at least ``x`` window scores above it"
    implies "at least ``x`` window scores among the ``x + k`` largest of all ``n + held``", a
    hypergeometric tail. By the hypergeometric's symmetry this is Fisher's one-sided test on
    the counts (``x`` of ``n`` against ``k`` of ``held``) when ``k`` is the held-out count as
    numpy's interpolated quantile leaves it (a rounded ``(1 - quantile) held`` can be one too
    few, which makes Fisher's slightly liberal for some held-out sizes).
    """
    from scipy.stats import hypergeom

    if above <= 0:
        return 1.0
    k = held_above(held, quantile)
    return float(min(1.0, hypergeom.sf(above - 1, n + held, n, above + k)))


def score_outliers(model: OutlierModel | None, batch: LogBatch) -> np.ndarray | None:
    """Scores of ``batch``'s logs under ``model`` (None when there is no model or the batch
    lacks the features it was fitted on)."""
    if model is None:
        return None
    x = batch.embeddings if model.source == "embedding" else batch.pixel
    if x is None or x.shape[1] != model.width:
        return None
    return outlier_scores(model, np.asarray(x, dtype=np.float64))
