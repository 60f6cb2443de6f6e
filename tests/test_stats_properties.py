"""Property tests of the statistics: symmetric where they should be, bounded, row-order
invariant, and never NaN on valid input (constant columns, a single class, empty bins)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.stats import (
    adjust_pvalues,
    chi2_homogeneity,
    cohens_h,
    cohens_w,
    cohens_w_adjusted,
    js_distance,
    ks_columns,
    mmd_test,
    proportion_test,
    psi,
    shares,
)
from monitor.stats.outliers import exceedance_p_value

FAST = settings(max_examples=60, deadline=None)
values = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


def columns(min_rows: int = 1) -> st.SearchStrategy[np.ndarray]:
    return st.integers(min_rows, 40).flatmap(
        lambda n: arrays(np.float64, (n, 3), elements=values | st.just(0.0) | st.just(1.0))
    )


counts = st.integers(1, 8).flatmap(
    lambda k: st.tuples(
        arrays(np.int64, k, elements=st.integers(0, 50)),
        arrays(np.int64, k, elements=st.integers(0, 50)),
    )
)


@FAST
@given(columns(), columns())
def test_ks_symmetric_bounded_finite(ref: np.ndarray, cur: np.ndarray) -> None:
    a, b = ks_columns(ref, cur), ks_columns(cur, ref)
    assert np.allclose(a.statistic, b.statistic) and np.allclose(a.p_value, b.p_value)
    assert np.allclose(a.wasserstein, b.wasserstein, rtol=1e-9, atol=1e-9)
    assert np.all((a.statistic >= 0) & (a.statistic <= 1))
    assert np.all((a.p_value >= 0) & (a.p_value <= 1))
    assert np.all(np.isfinite(a.wasserstein)) and np.all(a.wasserstein >= 0)


@FAST
@given(columns(), columns(), st.randoms(use_true_random=False))
def test_ks_row_order_invariant(ref: np.ndarray, cur: np.ndarray, rnd) -> None:  # type: ignore[no-untyped-def]
    perm_r = np.array(rnd.sample(range(len(ref)), len(ref)))
    perm_c = np.array(rnd.sample(range(len(cur)), len(cur)))
    a, b = ks_columns(ref, cur), ks_columns(ref[perm_r], cur[perm_c])
    assert np.array_equal(a.statistic, b.statistic)
    assert np.allclose(a.wasserstein, b.wasserstein, rtol=1e-9, atol=1e-9)


@FAST
@given(columns())
def test_ks_of_a_sample_with_itself_is_zero(x: np.ndarray) -> None:
    res = ks_columns(x, x)
    assert np.all(res.statistic == 0) and np.all(res.p_value == 1)
    assert np.allclose(res.wasserstein, 0)


@FAST
@given(st.floats(-5, 5), st.integers(1, 30), st.integers(1, 30))
def test_constant_columns_are_finite(c: float, n: int, m: int) -> None:
    res = ks_columns(np.full((n, 2), c), np.full((m, 2), c))
    assert np.all(res.statistic == 0) and np.all(res.p_value == 1)
    moved = ks_columns(np.full(n, c), np.full(m, c + 1))
    assert moved.statistic[0] == 1.0 and np.isfinite(moved.p_value[0])


@FAST
@given(counts)
def test_histogram_distances_symmetric_bounded_finite(pair: tuple[np.ndarray, np.ndarray]) -> None:
    r, c = pair
    rs, cs = shares(r, 0.5), shares(c, 0.5)
    assert np.isclose(psi(rs, cs), psi(cs, rs)) and psi(rs, cs) >= -1e-12
    js = js_distance(r, c)
    assert np.isclose(js, js_distance(c, r)) and 0 <= js <= np.sqrt(np.log(2)) + 1e-12
    w = cohens_w(shares(r), shares(c))
    assert np.isclose(w, cohens_w(shares(c), shares(r))) and 0 <= w <= 1
    for x in (psi(rs, cs), js, w):
        assert np.isfinite(x)


@FAST
@given(counts)
def test_chi2_symmetric_and_valid(pair: tuple[np.ndarray, np.ndarray]) -> None:
    r, c = pair
    s1, p1, d1 = chi2_homogeneity(r, c)
    s2, p2, d2 = chi2_homogeneity(c, r)
    assert np.isclose(s1, s2) and np.isclose(p1, p2) and d1 == d2
    assert np.isfinite(s1) and 0 <= p1 <= 1


@FAST
@given(st.integers(1, 1000), st.integers(1, 1000))
def test_single_class_gives_no_evidence(n: int, m: int) -> None:
    assert chi2_homogeneity(np.array([n]), np.array([m])) == (0.0, 1.0, 0)
    assert cohens_w(shares(np.array([n])), shares(np.array([m]))) == 0.0
    assert js_distance(np.array([n, 0]), np.array([m, 0])) == 0.0


@FAST
@given(st.floats(0, 1), st.floats(0, 1))
def test_cohens_h_symmetric_bounded(a: float, b: float) -> None:
    h = cohens_h(np.array(a), np.array(b))
    assert np.isclose(h, cohens_h(np.array(b), np.array(a))) and 0 <= h <= np.pi + 1e-12


@FAST
@given(arrays(np.float64, st.integers(1, 20), elements=st.floats(0, 1)))
def test_adjusted_pvalues_are_valid(p: np.ndarray) -> None:
    for method in ("holm", "bh"):
        adj = adjust_pvalues(p, method)
        assert np.all(adj >= p - 1e-15) and np.all(adj <= 1)
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= -1e-15)  # monotone in p
    assert np.all(adjust_pvalues(p, "bh") <= adjust_pvalues(p, "holm") + 1e-15)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 60), st.integers(2, 60))
def test_mmd_is_seeded_finite_and_bounded(seed: int, n: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 5)), rng.normal(size=(m, 5))
    a, b = (
        mmd_test(x, y, seed=seed, n_permutations=50),
        mmd_test(x, y, seed=seed, n_permutations=50),
    )
    assert a == b
    assert 0 < a.p_value <= 1 and np.isfinite(a.statistic)
    const = mmd_test(np.ones((n, 5)), np.ones((m, 5)), n_permutations=50)
    assert const.p_value == 1.0 and np.isfinite(const.statistic)


@FAST
@given(counts)
def test_cohens_w_adjusted_symmetric_bounded(pair: tuple[np.ndarray, np.ndarray]) -> None:
    r, c = pair
    w = cohens_w_adjusted(r, c)
    assert np.isfinite(w) and 0.0 <= w <= 1.0
    assert w == cohens_w_adjusted(c, r)
    if r.sum() and c.sum():
        assert w <= float(cohens_w(r / r.sum(), c / c.sum())) + 1e-12


@FAST
@given(st.integers(0, 40), st.integers(1, 40), st.integers(0, 40), st.integers(1, 40))
def test_proportion_test_symmetric_and_valid(a: int, n: int, b: int, m: int) -> None:
    a, b = min(a, n), min(b, m)
    z, p = proportion_test(np.array([a]), n, np.array([b]), m)
    z2, p2 = proportion_test(np.array([b]), m, np.array([a]), n)
    assert np.isfinite(z).all() and 0.0 <= p[0] <= 1.0 + 1e-12
    assert p[0] == np.float64(p2[0]) or abs(p[0] - p2[0]) < 1e-9
    assert z[0] == -z2[0]


@settings(max_examples=6, deadline=None)
@given(
    held=st.sampled_from([200, 1000, 5000]),
    n=st.sampled_from([20, 500, 5000]),
    seed=st.integers(0, 2**16),
)
def test_exceedance_p_value_is_valid_under_exchangeable_scores(
    held: int, n: int, seed: int
) -> None:
    """Held-out and window scores from one distribution: the threshold is the held-out 99th
    percentile, and P(p <= a) stays at most a (+3 binomial SE over 400 draws) at a = 0.05 and
    0.2, however large the window is next to the held-out part."""
    rng = np.random.default_rng(seed)
    reps = 400
    ps = np.empty(reps)
    for r in range(reps):
        threshold = np.quantile(rng.standard_normal(held), 0.99)
        above = int(np.sum(rng.standard_normal(n) > threshold))
        ps[r] = exceedance_p_value(above, n, held, 0.99)
    assert ((ps >= 0) & (ps <= 1)).all()
    for a in (0.05, 0.2):
        assert (ps <= a).mean() <= a + 3 * np.sqrt(a * (1 - a) / reps)
