"""Paired shadow statistics against statsmodels' McNemar and scipy's paired t-statistic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ttest_rel
from statsmodels.stats.contingency_tables import mcnemar

from retrain.shadow import mcnemar_exact, paired


@given(b=st.integers(0, 200), c=st.integers(0, 200))
def test_mcnemar_two_sided_matches_statsmodels(b: int, c: int) -> None:
    table = np.array([[10, b], [c, 10]])
    expected = mcnemar(table, exact=True).pvalue
    assert mcnemar_exact(b, c)[1] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=50)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 300))
def test_paired_figures(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    sp, cp = rng.integers(0, 3, n), rng.integers(0, 3, n)
    sc, cc = rng.uniform(0.3, 1, n), rng.uniform(0.3, 1, n)
    s = paired(sp, cp, sc, cc, y)
    b = int(((sp == y) & (cp != y)).sum())
    c = int(((sp != y) & (cp == y)).sum())
    assert (s.stable_only_right, s.canary_only_right) == (b, c)
    assert s.agreement == pytest.approx(float((sp == cp).mean()))
    t = ttest_rel(cc, sc).statistic
    if np.isfinite(t):
        assert s.confidence_diff / s.confidence_diff_se == pytest.approx(t, rel=1e-6)
    assert paired(sp, cp, sc, cc).p_worse is None


def test_a_worse_canary_is_detected_one_sided() -> None:
    worse, two = mcnemar_exact(30, 10)
    assert worse < 0.01 and two < 0.01 and mcnemar_exact(10, 30)[0] > 0.99
    with pytest.raises(ValueError):
        paired(np.array([]), np.array([]), np.array([]), np.array([]))
