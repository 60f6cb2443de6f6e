"""The statistics shared with Evidently 0.7.23 give Evidently's values on the same data.

Evidently's stat-test functions are called directly (``evidently.legacy.calculations
.stattests``), on the same arrays, next to ours. Where Evidently's function also makes a
decision, only its value is compared: decisions are ours (p-value *and* effect floor).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from monitor.stats import (
    chi2_goodness_of_fit,
    evidently_bins,
    js_distance,
    ks_columns,
    psi,
    wasserstein_norm,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)
stattests = pytest.importorskip("evidently.legacy.calculations.stattests")
from evidently.legacy.calculations.stattests.chisquare_stattest import (  # noqa: E402
    _chi_stat_test,
)
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon  # noqa: E402
from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test  # noqa: E402
from evidently.legacy.calculations.stattests.psi import _psi  # noqa: E402
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import (  # noqa: E402
    _wasserstein_distance_norm,
)
from evidently.legacy.core import ColumnType  # noqa: E402

NUM, CAT = ColumnType.Numerical, ColumnType.Categorical


def numeric_pair(seed: int, n: int, m: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 1.0, n), rng.gamma(2.0, 1.0 + shift, m)


CASES = [(0, 2000, 1500, 0.0), (1, 800, 3000, 0.1), (2, 5000, 5000, 0.3), (3, 300, 200, 0.05)]


@pytest.mark.parametrize(("seed", "n", "m", "shift"), CASES)
def test_ks_statistic_and_pvalue_match_evidently(seed: int, n: int, m: int, shift: float) -> None:
    ref, cur = numeric_pair(seed, n, m, shift)
    p_evidently, _ = _ks_stat_test(pd.Series(ref), pd.Series(cur), NUM, 0.05)
    ours = ks_columns(ref, cur)
    # Below 10,000 rows Evidently (scipy "auto") computes the exact p-value; ours is Stephens'
    # approximation, within 0.01 here (0.03 at n = m = 100).
    assert ours.p_value[0] == pytest.approx(p_evidently, abs=0.01)


def test_ks_matches_evidently_exactly_in_its_asymptotic_regime() -> None:
    ref, cur = numeric_pair(4, 12_000, 11_000, 0.02)
    p_evidently, _ = _ks_stat_test(pd.Series(ref), pd.Series(cur), NUM, 0.05)
    assert ks_columns(ref, cur, p_method="asymp").p_value[0] == pytest.approx(p_evidently, rel=1e-9)
    assert ks_columns(ref, cur).p_value[0] == pytest.approx(p_evidently, abs=2e-3)


@pytest.mark.parametrize(("seed", "n", "m", "shift"), CASES)
def test_wasserstein_norm_matches_evidently(seed: int, n: int, m: int, shift: float) -> None:
    ref, cur = numeric_pair(seed, n, m, shift)
    value, _ = _wasserstein_distance_norm(pd.Series(ref), pd.Series(cur), NUM, 0.1)
    assert wasserstein_norm(ref, cur)[0] == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize(("seed", "n", "m", "shift"), CASES)
def test_psi_and_js_match_evidently_on_numeric_data(
    seed: int, n: int, m: int, shift: float
) -> None:
    ref, cur = numeric_pair(seed, n, m, shift)
    psi_value, _ = _psi(pd.Series(ref), pd.Series(cur), NUM, 0.1)
    js_value, _ = _jensenshannon(pd.Series(ref), pd.Series(cur), NUM, 0.1)
    assert psi(*evidently_bins(ref, cur))[()] == pytest.approx(psi_value, rel=1e-9)
    assert js_distance(*evidently_bins(ref, cur, fill=False))[()] == pytest.approx(
        js_value, rel=1e-9
    )


def class_pair(seed: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.choice(10, size=n, p=np.r_[np.full(9, 0.105), 0.055])
    cur_p = np.r_[np.full(8, 0.11), 0.10, 0.02, 0.0]  # class 10 absent here ...
    cur = rng.choice(11, size=m, p=cur_p / cur_p.sum())
    cur[:3] = 10  # ... and then seen only in the window
    return ref, cur


@pytest.mark.parametrize(("seed", "n", "m"), [(0, 5000, 1000), (1, 800, 800), (2, 20000, 300)])
def test_categorical_psi_js_and_chi_square_match_evidently(seed: int, n: int, m: int) -> None:
    ref, cur = class_pair(seed, n, m)
    ref_s, cur_s = pd.Series(ref), pd.Series(cur)
    psi_value, _ = _psi(ref_s, cur_s, CAT, 0.1)
    js_value, _ = _jensenshannon(ref_s, cur_s, CAT, 0.1)
    assert psi(*evidently_bins(ref, cur, numerical=False))[()] == pytest.approx(psi_value, rel=1e-9)
    assert js_distance(*evidently_bins(ref, cur, numerical=False, fill=False))[()] == pytest.approx(
        js_value, rel=1e-9
    )
    # Without the unseen class Evidently's goodness-of-fit chi-square is finite; compare there.
    seen = cur[cur < 10]
    p_evidently, _ = _chi_stat_test(ref_s, pd.Series(seen), CAT, 0.05)
    ref_counts, cur_counts = np.bincount(ref, minlength=10), np.bincount(seen, minlength=10)
    assert chi2_goodness_of_fit(ref_counts, cur_counts)[1] == pytest.approx(p_evidently, rel=1e-9)


def test_our_chi_square_stays_finite_where_evidentlys_breaks() -> None:
    """A class never seen in the reference: Evidently's test divides by zero, ours does not."""
    from monitor.stats import chi2_homogeneity

    ref, cur = class_pair(5, 2000, 500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_evidently, _ = _chi_stat_test(pd.Series(ref), pd.Series(cur), CAT, 0.05)
    stat, p, _ = chi2_homogeneity(np.bincount(ref, minlength=11), np.bincount(cur, minlength=11))
    assert np.isfinite(stat) and 0.0 < p < 0.01
    assert not (np.isfinite(p_evidently) and p_evidently > 0)


def test_goodness_of_fit_over_rejects_where_homogeneity_does_not() -> None:
    """Why the class detector does not use Evidently's test: equal sizes, no shift."""
    from monitor.stats import chi2_homogeneity

    rng = np.random.default_rng(11)
    shares = np.r_[np.full(9, 0.105), 0.055]
    n_trials, alpha = 300, 0.05
    gof = homog = 0
    for _ in range(n_trials):
        ref, cur = rng.multinomial(1000, shares), rng.multinomial(1000, shares)
        gof += chi2_goodness_of_fit(ref, cur)[1] < alpha
        homog += chi2_homogeneity(ref, cur)[1] < alpha
    assert homog <= alpha * n_trials + 3 * np.sqrt(n_trials * alpha * (1 - alpha))
    assert gof > 3 * alpha * n_trials
