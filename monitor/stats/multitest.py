"""Multiple-testing control: the one place p-values of several features are combined.

References: Holm (1979), "A simple sequentially rejective multiple test procedure";
Benjamini & Hochberg (1995), "Controlling the false discovery rate".
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Correction = Literal["holm", "bh", "none"]


def adjust_pvalues(p_values: np.ndarray, method: Correction = "holm") -> np.ndarray:
    """Adjusted p-values along the last axis; reject where ``adjusted < alpha``.

    ``holm`` controls the family-wise error rate (any false alarm among the features) under any
    dependence; ``bh`` controls the false discovery rate (independent or positively dependent
    tests); ``none`` returns the input. Values equal those of statsmodels' ``multipletests``
    (``holm``, ``fdr_bh``).

    Examples
    --------
    >>> p = np.array([0.01, 0.04, 0.03, 0.20])
    >>> adjust_pvalues(p, "holm")
    array([0.04, 0.09, 0.09, 0.2 ])
    >>> adjust_pvalues(p, "bh")
    array([0.04      , 0.05333333, 0.05333333, 0.2       ])
    """
    p = np.asarray(p_values, dtype=np.float64)
    if method == "none" or p.shape[-1] == 0:
        return p.copy()
    k = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    if method == "holm":
        scaled = ranked * (k - np.arange(k))
        adj_sorted = np.maximum.accumulate(scaled, axis=-1)
    elif method == "bh":
        scaled = ranked * k / np.arange(1, k + 1)
        adj_sorted = np.flip(np.minimum.accumulate(np.flip(scaled, -1), axis=-1), -1)
    else:
        raise ValueError(f"unknown multiple-testing method {method!r}")
    adj_sorted = np.clip(adj_sorted, 0.0, 1.0)
    out = np.empty_like(adj_sorted)
    np.put_along_axis(out, order, adj_sorted, axis=-1)
    return out
