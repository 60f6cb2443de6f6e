"""The single textbook tests the power study runs beside Driftwatch, each at alpha 0.05.

- ``bbsd``: KS on every softmax output (scipy ``ks_2samp``), Bonferroni (Rabanser et al. 2019).
- ``ks-pixel``: KS on every pixel statistic, Bonferroni.
- ``rbf-mmd``: exact Gaussian-kernel MMD, median-heuristic bandwidth, all rows, 100 permutations.
- ``chi2``: Pearson's chi-square on the predicted-class counts (2 x K), no correction.
"""

from __future__ import annotations

import numpy as np

from monitor.batch import LogBatch
from monitor.stats import mmd_test

ALPHA = 0.05
NAMES = ("bbsd", "ks-pixel", "rbf-mmd", "chi2")


def _ks_bonferroni(ref: np.ndarray, cur: np.ndarray) -> bool:
    from scipy.stats import ks_2samp

    keep = [j for j in range(ref.shape[1]) if np.ptp(ref[:, j]) > 0 or np.ptp(cur[:, j]) > 0]
    if not keep:
        return False
    p = min(float(ks_2samp(ref[:, j], cur[:, j]).pvalue) for j in keep)
    return p * len(keep) < ALPHA


def _chi2(ref: LogBatch, cur: LogBatch) -> bool:
    from scipy.stats import chi2_contingency

    k = max(ref.n_classes, cur.n_classes)
    table = np.vstack(
        [np.bincount(ref.predicted, minlength=k), np.bincount(cur.predicted, minlength=k)]
    )
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return False
    return float(chi2_contingency(table, correction=False).pvalue) < ALPHA


def baselines(ref: LogBatch, cur: LogBatch, seed: int) -> dict[str, bool]:
    """Whether each baseline flags ``cur`` against ``ref``."""
    assert ref.pixel is not None and cur.pixel is not None
    assert ref.embeddings is not None and cur.embeddings is not None
    mmd = mmd_test(
        ref.embeddings,
        cur.embeddings,
        None,
        n_permutations=100,
        max_rows=10**6,
        n_features=None,
        seed=seed,
    )
    return {
        "bbsd": _ks_bonferroni(np.asarray(ref.probs, float), np.asarray(cur.probs, float)),
        "ks-pixel": _ks_bonferroni(ref.pixel, cur.pixel),
        "rbf-mmd": mmd.p_value < ALPHA,
        "chi2": _chi2(ref, cur),
    }
