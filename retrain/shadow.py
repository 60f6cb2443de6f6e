"""Paired statistics of a shadow canary: both models scored the same requests.

On identical inputs the comparison is paired: agreement, the per-request confidence
difference, and McNemar's exact test on the discordant pairs where labels exist (``b``: stable
right and canary wrong, ``c``: the reverse; under "equally accurate" ``b ~ Binomial(b + c,
1/2)``). Only the discordant requests carry information, which is why a paired comparison
needs far fewer requests than two independent traffic splits (bench/canary_power.py).

>>> import numpy as np
>>> s = paired(np.array([1, 1, 2, 3]), np.array([1, 0, 2, 3]), np.full(4, .9), np.full(4, .8),
...            np.array([1, 1, 2, 0]))
>>> s.agreement, s.stable_only_right, s.canary_only_right
(0.75, 1, 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom


@dataclass(frozen=True)
class PairedStats:
    n: int
    agreement: float
    confidence_diff: float  # mean of canary - stable confidence, per request
    confidence_diff_se: float
    n_labelled: int
    stable_only_right: int  # b
    canary_only_right: int  # c
    p_worse: float | None  # one-sided exact McNemar: canary less accurate
    p_two_sided: float | None


def mcnemar_exact(b: int, c: int) -> tuple[float, float]:
    """(one-sided p that the canary is worse, two-sided p) of McNemar's exact test."""
    m = b + c
    if m == 0:
        return 1.0, 1.0
    worse = float(binom.sf(b - 1, m, 0.5))  # P(X >= b)
    two = float(min(1.0, 2 * binom.cdf(min(b, c), m, 0.5)))
    return worse, two


def paired(
    stable_pred: np.ndarray,
    canary_pred: np.ndarray,
    stable_conf: np.ndarray,
    canary_conf: np.ndarray,
    labels: np.ndarray | None = None,
) -> PairedStats:
    """Paired statistics of two models' outputs on the same requests (labels ``-1``: none)."""
    n = len(stable_pred)
    if n == 0 or len(canary_pred) != n:
        raise ValueError("paired statistics need the same, non-empty set of requests")
    diff = np.asarray(canary_conf, float) - np.asarray(stable_conf, float)
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    known = np.zeros(n, bool) if labels is None else np.asarray(labels) >= 0
    s_ok = stable_pred[known] == np.asarray(labels)[known] if known.any() else np.zeros(0, bool)
    c_ok = canary_pred[known] == np.asarray(labels)[known] if known.any() else np.zeros(0, bool)
    b, c = int((s_ok & ~c_ok).sum()), int((~s_ok & c_ok).sum())
    worse, two = mcnemar_exact(b, c) if known.any() else (None, None)
    return PairedStats(
        n=n,
        agreement=float((stable_pred == canary_pred).mean()),
        confidence_diff=float(diff.mean()),
        confidence_diff_se=se,
        n_labelled=int(known.sum()),
        stable_only_right=b,
        canary_only_right=c,
        p_worse=worse,
        p_two_sided=two,
    )
