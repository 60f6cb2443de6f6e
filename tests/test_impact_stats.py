"""The impact statistics against scipy/scikit-learn and by simulation: temperature scaling,
ECE, the CBPE interval, Wilson intervals, Ledoit-Wolf shrinkage, Mahalanobis scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import mahalanobis
from scipy.stats import binomtest

from monitor.detectors.simulate import synthetic_batch
from monitor.impact.estimate import accuracy_drop, disagrees, estimate_accuracy, realized_accuracy
from monitor.impact.profile import ImpactProfile, fit_impact
from monitor.impact.temperature import apply_temperature, ece, fit_temperature, nll, softmax
from monitor.stats.outliers import fit_outliers, ledoit_wolf, outlier_scores, score_outliers


def _calibrated(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(size=(n, k)) * 2.5)
    labels = (rng.random((n, 1)) > probs.cumsum(axis=1)).sum(axis=1)
    return probs, np.minimum(labels, k - 1)


@settings(max_examples=20, deadline=None)
@given(st.floats(0.4, 3.0), st.integers(0, 10_000))
def test_temperature_recovers_the_distortion(t: float, seed: int) -> None:
    probs, labels = _calibrated(3000, 6, seed)
    distorted = apply_temperature(probs, 1 / t)  # sharpened (t > 1) or softened (t < 1)
    fitted = fit_temperature(distorted, labels)
    assert fitted == pytest.approx(t, rel=0.15)
    grid = np.exp(np.linspace(-2, 2, 81))  # the minimum of a brute-force search is no lower
    assert nll(distorted, labels, fitted) <= min(nll(distorted, labels, g) for g in grid) + 1e-6


def test_temperature_one_is_the_identity_and_order_is_kept() -> None:
    probs, _ = _calibrated(200, 5, 1)
    assert np.allclose(apply_temperature(probs, 1.0), probs, atol=1e-9)
    assert (apply_temperature(probs, 3.0).argmax(1) == probs.argmax(1)).all()
    with pytest.raises(ValueError):
        apply_temperature(probs, 0.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 400), st.integers(2, 8), st.integers(0, 10_000), st.integers(1, 20))
def test_ece_matches_a_per_bin_loop(n: int, k: int, seed: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(size=(n, k)) * 3)
    labels = rng.integers(0, k, n)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    expected = 0.0
    for b in range(bins):  # (lo, hi], the first bin closed at 0
        lo, hi = b / bins, (b + 1) / bins
        inside = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if inside.any():
            expected += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert ece(probs, labels, bins) == pytest.approx(expected, abs=1e-9)


def test_cbpe_interval_covers_the_realized_accuracy_at_its_level() -> None:
    rng = np.random.default_rng(3)
    conf = rng.beta(8, 1.5, 500)
    est = estimate_accuracy(conf, 0.95)
    realized = (rng.random((4000, 500)) < conf).mean(axis=1)  # calibrated by construction
    assert realized.std() == pytest.approx(est.se, rel=0.05)  # Poisson-binomial spread
    assert 0.93 <= np.mean([est.covers(r) for r in realized]) <= 0.97


def test_wilson_interval_matches_scipy() -> None:
    predicted = np.array([1] * 37 + [0] * 13)
    labels = np.ones(50, dtype=np.int64)
    labels[-5:] = -1  # unknown
    ours = realized_accuracy(predicted, labels)
    ci = binomtest(37, 45).proportion_ci(0.95, method="wilson")
    assert (ours.n, ours.low, ours.high) == (45, pytest.approx(ci.low), pytest.approx(ci.high))


def test_drop_and_disagreement() -> None:
    ref, cur = estimate_accuracy(np.full(2000, 0.95)), estimate_accuracy(np.full(500, 0.85))
    drop = accuracy_drop(ref, cur)
    assert drop.value == pytest.approx(0.10) and drop.low > 0.05
    wrong = realized_accuracy(np.zeros(500), np.r_[np.zeros(300), np.ones(200)].astype(int))
    assert disagrees(cur, wrong, 0.05) and not disagrees(cur, cur, 0.05)


@settings(max_examples=15, deadline=None)
@given(st.integers(5, 300), st.integers(1, 40), st.integers(0, 10_000))
def test_ledoit_wolf_matches_scikit_learn(n: int, p: int, seed: int) -> None:
    from sklearn.covariance import ledoit_wolf as sk

    x = np.random.default_rng(seed).normal(size=(n, p)) * np.linspace(0.5, 3, p)
    cov, shrink = ledoit_wolf(x)
    sk_cov, sk_shrink = sk(x)
    assert shrink == pytest.approx(sk_shrink, abs=1e-9)
    assert np.allclose(cov, sk_cov, atol=1e-9)


def test_scores_are_mahalanobis_distances_and_the_threshold_holds_out() -> None:
    ref = synthetic_batch(2000, dim=16, seed=0)
    model = fit_outliers(ref, quantile=0.99)
    assert model is not None and model.source == "embedding"
    cur = synthetic_batch(3000, dim=16, seed=1)
    x = np.asarray(cur.embeddings, dtype=np.float64)
    z = (x - model.mean) / model.scale
    precision = model.whiten.T @ model.whiten
    expected = [mahalanobis(row, np.zeros(16), precision) for row in z[:20]]
    assert np.allclose(outlier_scores(model, x)[:20], expected)
    share = float((score_outliers(model, cur) > model.threshold).mean())  # no shift: ~1%
    assert 0.002 <= share <= 0.025
    far = synthetic_batch(300, dim=16, seed=2, embedding_shift=6.0)
    assert float((score_outliers(model, far) > model.threshold).mean()) > 0.5


def test_pixel_statistics_are_the_fallback_and_missing_values_give_nan() -> None:
    ref = synthetic_batch(500, dim=8, seed=0, embeddings=False)
    model = fit_outliers(ref)
    assert model is not None and model.source == "pixel"
    pixel = np.array(ref.pixel)
    pixel[0, 0] = np.nan
    scores = outlier_scores(model, pixel)
    assert np.isnan(scores[0]) and np.isfinite(scores[1:]).all()
    assert fit_outliers(synthetic_batch(50, dim=8, seed=0, embeddings=False, pixel=False)) is None


def test_impact_profile_calibrates_an_overconfident_reference_and_round_trips() -> None:
    base = synthetic_batch(3000, dim=8, seed=4)
    sharp = apply_temperature(base.probs, 0.4).astype(np.float32)  # overconfident model
    ref = type(base)(
        probs=sharp,
        predicted=base.predicted,
        embeddings=base.embeddings,
        pixel=base.pixel,
        labels=base.labels,
    )
    prof = fit_impact(ref)
    assert prof.temperature > 1.5 and prof.ece_before is not None and prof.ece_after is not None
    assert prof.ece_after < prof.ece_before / 2
    assert prof.reference.value == pytest.approx(prof.reference_realized.value, abs=0.05)  # type: ignore[union-attr]
    back = ImpactProfile.from_bytes(prof.to_bytes())
    assert back.temperature == prof.temperature and back.outliers is not None
    assert np.array_equal(back.outliers.whiten, prof.outliers.whiten)  # type: ignore[union-attr]
    unlabelled = fit_impact(type(base)(probs=sharp, predicted=base.predicted))
    assert unlabelled.temperature == 1.0 and unlabelled.ece_before is None
    assert unlabelled.outliers is None
