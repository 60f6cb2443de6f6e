"""The statistics against scipy (and plain loops) on the same data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from monitor.stats import (
    adjust_pvalues,
    chi2_goodness_of_fit,
    chi2_homogeneity,
    cohens_w,
    cohens_w_adjusted,
    fit_pca,
    fourier_features,
    js_distance,
    ks_columns,
    ks_pvalue,
    median_gamma,
    mmd2_unbiased,
    mmd_rff_gaussian,
    mmd_test,
    proportion_test,
    psi,
    rbf_kernel,
    shares,
    two_proportion_test,
    wasserstein_norm,
)
from monitor.stats.mmd import feature_moments


def _samples(seed: int, n: int = 700, m: int = 450, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, k)) * rng.uniform(0.5, 3, k)
    cur = rng.normal(size=(m, k)) * rng.uniform(0.5, 3, k) + rng.normal(0, 0.3, k)
    ref[:, 0] = np.round(ref[:, 0])  # ties
    cur[:, 0] = np.round(cur[:, 0])
    return ref, cur


@pytest.mark.parametrize("seed", range(5))
def test_ks_and_wasserstein_equal_scipy_per_column(seed: int) -> None:
    ref, cur = _samples(seed)
    res = ks_columns(ref, cur, p_method="asymp")
    for j in range(ref.shape[1]):
        expect = sps.ks_2samp(ref[:, j], cur[:, j], method="asymp")
        assert res.statistic[j] == pytest.approx(expect.statistic, abs=1e-12)
        assert res.p_value[j] == pytest.approx(expect.pvalue, rel=1e-9, abs=1e-300)
        assert res.wasserstein[j] == pytest.approx(
            sps.wasserstein_distance(ref[:, j], cur[:, j]), rel=1e-9, abs=1e-12
        )


@pytest.mark.parametrize(
    ("n", "m", "tol"), [(100, 100, 0.03), (1000, 1000, 0.01), (300, 5000, 0.01)]
)
def test_fast_ks_pvalue_is_close_to_scipys_exact_one(n: int, m: int, tol: float) -> None:
    rng = np.random.default_rng(n + m)
    for shift in np.linspace(0.0, 0.4, 9):
        a, b = rng.normal(size=n), rng.normal(shift, 1.0, size=m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exact = sps.ks_2samp(a, b, method="exact")
        ours = ks_columns(a, b)
        assert ours.statistic[0] == pytest.approx(exact.statistic, abs=1e-12)
        assert abs(ours.p_value[0] - exact.pvalue) <= tol


def test_ks_ignores_nan_per_column_and_handles_empty_columns() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=(300, 3)), rng.normal(0.5, 1, size=(200, 3))
    ref[::3, 1] = np.nan
    cur[:, 2] = np.nan
    res = ks_columns(ref, cur, p_method="asymp")
    expect = sps.ks_2samp(ref[~np.isnan(ref[:, 1]), 1], cur[:, 1], method="asymp")
    assert res.statistic[1] == pytest.approx(expect.statistic)
    assert res.p_value[1] == pytest.approx(expect.pvalue)
    assert (res.statistic[2], res.p_value[2], res.wasserstein[2]) == (0.0, 1.0, 0.0)
    assert res.n_ref.tolist() == [300, 200, 300] and res.n_cur.tolist() == [200, 200, 0]


def test_wasserstein_norm_divides_by_reference_std() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(0, 2, 1000), rng.normal(1, 2, 800)
    expect = sps.wasserstein_distance(ref, cur) / np.std(ref)
    assert wasserstein_norm(ref, cur)[0] == pytest.approx(expect)
    assert wasserstein_norm(np.ones(10), np.full(10, 2.0))[0] == pytest.approx(1000.0)


def test_ks_pvalue_methods_agree_roughly() -> None:
    d = np.linspace(0.0, 0.2, 21)
    n = np.full(21, 2000)
    assert np.max(np.abs(ks_pvalue(d, n, n) - ks_pvalue(d, n, n, "asymp"))) < 0.005


def test_chi2_homogeneity_equals_scipy_contingency() -> None:
    ref, cur = np.array([120, 80, 0, 40, 9]), np.array([30, 45, 7, 0, 3])
    stat, p, dof = chi2_homogeneity(ref, cur)
    keep = (ref + cur) > 0
    expect = sps.chi2_contingency(np.vstack([ref[keep], cur[keep]]), correction=False)
    assert stat == pytest.approx(expect.statistic)
    assert p == pytest.approx(expect.pvalue)
    assert dof == expect.dof


def test_chi2_degenerate_inputs() -> None:
    assert chi2_homogeneity(np.array([10]), np.array([5])) == (0.0, 1.0, 0)
    assert chi2_homogeneity(np.array([10, 0]), np.array([0, 0])) == (0.0, 1.0, 0)
    stat, p, _ = chi2_homogeneity(np.array([10, 10]), np.array([0, 0, 5]))  # unseen class 2
    assert np.isfinite(stat) and p < 0.01


def test_chi2_goodness_of_fit_equals_scipy_chisquare() -> None:
    ref, cur = np.array([50, 30, 20]), np.array([10, 20, 30])
    stat, p = chi2_goodness_of_fit(ref, cur)
    expect = sps.chisquare(cur, ref * cur.sum() / ref.sum())
    assert (stat, p) == pytest.approx((expect.statistic, expect.pvalue))


def test_two_proportion_test_equals_2x2_chi_square() -> None:
    z, p = two_proportion_test(np.array([30]), 400, np.array([55]), 500)
    table = np.array([[30, 370], [55, 445]])
    expect = sps.chi2_contingency(table, correction=False)
    assert z[0] ** 2 == pytest.approx(expect.statistic)
    assert p[0] == pytest.approx(expect.pvalue)


def test_js_distance_equals_scipy() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        p, q = rng.random(7), rng.random(7)
        p[rng.integers(7)] = 0.0
        assert js_distance(p, q)[()] == pytest.approx(jensenshannon(p, q))
        assert js_distance(p, q, base=2)[()] == pytest.approx(jensenshannon(p, q, base=2))


def test_psi_by_hand() -> None:
    r, c = np.array([0.2, 0.3, 0.5]), np.array([0.25, 0.25, 0.5])
    expect = sum((a - b) * np.log(a / b) for a, b in zip(r, c, strict=True))
    assert psi(r, c)[()] == pytest.approx(expect)
    assert psi(shares(np.array([5, 0]), 0.5), shares(np.array([0, 5]), 0.5))[()] > 1.0


def test_cohens_w_equals_the_contingency_effect_for_equal_rows() -> None:
    ref, cur = np.array([500, 300, 200]), np.array([400, 350, 250])
    chi = sps.chi2_contingency(np.vstack([ref, cur]), correction=False).statistic
    assert cohens_w(ref / 1000, cur / 1000)[()] == pytest.approx(np.sqrt(chi / 2000))


def _holm_loop(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    out = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def _bh_loop(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)[::-1]
    out = np.empty_like(p)
    running = 1.0
    for rank_from_top, i in enumerate(order):
        rank = len(p) - rank_from_top
        running = min(running, len(p) * p[i] / rank)
        out[i] = running
    return out


def test_adjust_pvalues_equal_textbook_loops() -> None:
    rng = np.random.default_rng(6)
    for _ in range(50):
        p = rng.random(rng.integers(1, 15)) ** 3
        assert adjust_pvalues(p, "holm") == pytest.approx(_holm_loop(p))
        assert adjust_pvalues(p, "bh") == pytest.approx(_bh_loop(p))
    batch = rng.random((4, 6))
    assert adjust_pvalues(batch, "holm") == pytest.approx(np.vstack([_holm_loop(r) for r in batch]))
    with pytest.raises(ValueError, match="unknown"):
        adjust_pvalues(batch, "bonferroni")  # type: ignore[arg-type]


def test_fourier_mmd_tracks_the_exact_kernel_mmd() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(400, 16)), rng.normal(0.25, 1.0, size=(400, 16))
    gamma = median_gamma(np.vstack([x, y]))
    exact = mmd2_unbiased(x, y, gamma)
    approx = mmd_test(x, y, gamma, n_features=4096, n_permutations=20, seed=1).statistic
    kernel_test = mmd_test(x, y, gamma, n_features=None, n_permutations=20, seed=1).statistic
    assert kernel_test == pytest.approx(exact, rel=1e-9)
    assert approx == pytest.approx(exact, abs=0.15 * exact)
    phi = fourier_features(x[:50], gamma, 4096, seed=0)
    assert np.max(np.abs(phi @ phi.T - rbf_kernel(x[:50], x[:50], gamma))) < 0.1


def test_mmd_torch_cpu_path_equals_numpy() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(300, 8)), rng.normal(0.2, 1.0, size=(250, 8))
    for n_features in (None, 128):
        a = mmd_test(x, y, n_features=n_features, seed=3)
        b = mmd_test(x, y, n_features=n_features, seed=3, device="cpu")
        assert a.p_value == b.p_value
        assert a.statistic == pytest.approx(b.statistic)


def test_mmd_subsamples_to_its_cap_and_handles_tiny_inputs() -> None:
    rng = np.random.default_rng(9)
    res = mmd_test(rng.normal(size=(5000, 4)), rng.normal(size=(3000, 4)), max_rows=200)
    assert (res.n_x, res.n_y) == (200, 200)
    assert mmd_test(np.zeros((1, 4)), np.ones((10, 4))).p_value == 1.0


def test_fit_pca_recovers_the_main_axis() -> None:
    rng = np.random.default_rng(10)
    axis = np.array([3.0, 4.0, 0.0]) / 5.0
    x = rng.normal(size=(500, 1)) * 10 * axis + rng.normal(0, 0.1, size=(500, 3))
    _, comps, ratio = fit_pca(x, 2)
    assert abs(comps[0] @ axis) > 0.999
    assert ratio[0] > 0.99


def test_cohens_w_adjusted_equals_the_bias_corrected_contingency_effect() -> None:
    """Equal sizes: sqrt(max(0, chi2 - df) / N) from scipy's contingency chi-square."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        k = int(rng.integers(2, 12))
        ref, cur = (
            rng.multinomial(600, rng.dirichlet(np.ones(k))),
            rng.multinomial(600, rng.dirichlet(np.ones(k))),
        )
        table = np.vstack([ref, cur])[:, (ref + cur) > 0]
        res = sps.chi2_contingency(table, correction=False)
        expect = np.sqrt(max(0.0, res.statistic - res.dof) / 1200)
        assert cohens_w_adjusted(ref, cur) == pytest.approx(expect)


def test_cohens_w_adjusted_removes_the_noise_of_a_small_reference() -> None:
    """Clean samples (10 equal classes): plug-in w sits near sqrt(9 (1/n + 1/m) / 4), above a
    0.1 floor for n = 360; the corrected w is centred near 0 and under the floor."""
    rng = np.random.default_rng(4)
    p = np.full(10, 0.1)
    raw, adj = [], []
    for _ in range(400):
        ref, cur = rng.multinomial(360, p), rng.multinomial(1000, p)
        raw.append(float(cohens_w(ref / 360, cur / 1000)))
        adj.append(cohens_w_adjusted(ref, cur))
    assert np.mean(raw) == pytest.approx(np.sqrt(9 * (1 / 360 + 1 / 1000) / 4), rel=0.1)
    assert np.mean(np.square(adj)) < 0.002 and np.quantile(adj, 0.95) < 0.1
    # a real change is kept: shares 10% -> 0.5% for one class of ten
    q = p.copy()
    q[3] = 0.005
    q /= q.sum()
    ws = [cohens_w_adjusted(rng.multinomial(360, p), rng.multinomial(1000, q)) for _ in range(50)]
    assert np.median(ws) == pytest.approx(float(cohens_w(p, q)), abs=0.03)


def test_proportion_test_is_fisher_exact_for_small_counts_and_z_otherwise() -> None:
    cases = [(0, 360, 1, 10), (2, 360, 3, 10), (1, 50, 0, 50), (30, 400, 55, 500), (0, 5, 5, 5)]
    for a, n, b, m in cases:
        _, p = proportion_test(np.array([a]), n, np.array([b]), m)
        expected = min(a + b, n + m - a - b) * min(n, m) / (n + m)
        if expected < 5:
            ref = sps.fisher_exact([[a, n - a], [b, m - b]]).pvalue
        else:
            ref = sps.chi2_contingency([[a, n - a], [b, m - b]], correction=False).pvalue
        assert p[0] == pytest.approx(ref), (a, n, b, m)
    # the case the z-test gets wrong: 0 of 360 against 1 of 10
    _, p_z = two_proportion_test(np.array([0]), 360, np.array([1]), 10)
    _, p_x = proportion_test(np.array([0]), 360, np.array([1]), 10)
    assert p_z[0] < 1e-8 and p_x[0] == pytest.approx(1 / 37)


def test_proportion_test_is_calibrated_where_the_z_test_is_not() -> None:
    """Rate 1% in both, reference 360, windows of 10: the z-test rejects far above alpha."""
    rng = np.random.default_rng(5)
    alpha, trials = 0.05, 2000
    a = rng.binomial(360, 0.01, trials)
    b = rng.binomial(10, 0.01, trials)
    _, p_x = proportion_test(a, 360, b, 10)
    _, p_z = two_proportion_test(a, 360, b, 10)
    limit = alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials)
    assert np.mean(p_x < alpha) <= limit
    assert np.mean(p_z < alpha) > limit


def test_rff_mmd_from_cached_reference_moments_is_the_pooled_computation() -> None:
    """The reference's feature sum and Gram matrix are computed once per sample and reused;
    the statistic and the Satterthwaite p-value are those of the pooled features."""
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=(2000, 16)), rng.normal(0.03, 1.0, size=(5000, 16))
    gamma, n_feat = 0.03, 64
    test = mmd_rff_gaussian(ref, cur, gamma, n_feat, seed=1)
    assert feature_moments(ref, gamma, n_feat, 1) is feature_moments(ref, gamma, n_feat, 1)
    phi = fourier_features(np.concatenate([ref, cur]), gamma, n_feat, 1).astype(np.float64)
    diff = phi[:2000].mean(axis=0) - phi[2000:].mean(axis=0)
    lam = np.clip(np.linalg.eigvalsh(np.cov(phi.T)), 0, None) * (1 / 2000 + 1 / 5000)
    s1, s2 = lam.sum(), (lam**2).sum()
    expected = sps.chi2.sf(diff @ diff * s1 / s2, s1 * s1 / s2)
    assert test.p_value == pytest.approx(expected, rel=1e-4, abs=1e-12)
    again = mmd_rff_gaussian(ref, cur, gamma, n_feat, seed=1)
    assert again == test
