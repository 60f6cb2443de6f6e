"""The library call ``monitor.detect``: arrays in, per-family results and one verdict out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import Verdict, detect
from monitor.detection import as_batch, combine
from monitor.detectors import registry
from monitor.detectors.simulate import synthetic_batch
from monitor.evaluate import compare_arms
from monitor.imagestats import batch_stats
from monitor.results import DriftResult
from monitor.settings import DetectorSettings, FamilySettings


def _arrays(n: int, seed: int, brightness: float = 0.0) -> dict[str, np.ndarray]:
    b = synthetic_batch(n, seed=seed, dim=16, brightness=brightness)
    rng = np.random.default_rng(seed)
    level = np.clip(rng.normal(120 * (1 + brightness), 20, size=(n, 1, 1)), 0, 255)
    images = np.clip(level + rng.normal(0, 30, size=(n, 8, 8)), 0, 255).astype(np.uint8)
    return {"probs": b.probs, "embeddings": b.embeddings, "images": images}  # type: ignore[dict-item]


def test_arrays_in_a_verdict_out() -> None:
    ref, cur = _arrays(1500, 0), _arrays(400, 1, brightness=-0.4)
    verdict = detect(ref, cur)
    assert isinstance(verdict, Verdict)
    assert set(verdict.families) == {"embedding", "pixel", "confidence", "classes"}
    assert verdict.drifted and verdict.significant and verdict.families["pixel"].drifted
    assert verdict.alpha == pytest.approx(DetectorSettings().alpha)
    assert not detect(ref, _arrays(400, 2)).drifted


def test_images_become_pixel_statistics() -> None:
    arrays = _arrays(50, 3)
    batch = as_batch(arrays)
    assert batch.pixel is not None
    np.testing.assert_allclose(batch.pixel, batch_stats(arrays["images"]))
    np.testing.assert_array_equal(batch.predicted, arrays["probs"].argmax(axis=1))


def test_missing_inputs_skip_their_families_and_bad_input_is_refused() -> None:
    ref, cur = _arrays(600, 4), _arrays(200, 5)
    only_probs = detect({"probs": ref["probs"]}, {"probs": cur["probs"]})
    assert [r.family for r in only_probs.results] == ["confidence", "classes"]
    assert only_probs.alpha == pytest.approx(0.025)  # the two shares that were spent
    with pytest.raises(ValueError, match="unknown window arrays"):
        as_batch({"probs": cur["probs"], "thumbnail": cur["images"]})
    with pytest.raises(ValueError, match="needs probs"):
        as_batch({"embeddings": cur["embeddings"]})


def test_fitted_profiles_and_raw_reference_give_the_same_verdict() -> None:
    ref, cur = synthetic_batch(2000, seed=6, dim=16), synthetic_batch(300, seed=7, dim=16)
    detectors = DetectorSettings()
    profiles = registry.fit_all(ref, detectors, "m", seed=3)
    a, b = (
        detect(profiles, cur, detectors, model="m"),
        detect(ref, cur, detectors, model="m", seed=3),
    )
    assert (a.p_value, a.drifted) == (b.p_value, b.drifted)
    assert [r.to_dict() for r in a.results] == [r.to_dict() for r in b.results]
    arms = compare_arms(ref, cur, detectors, "m", seed=3)  # the canary comparison is the same call
    assert [r.to_dict() for r in arms] == [r.to_dict() for r in b.results]


def test_settings_change_the_kinds_and_the_budget() -> None:
    ref, cur = synthetic_batch(2000, seed=8, dim=16), synthetic_batch(300, seed=9, dim=16)
    tuned = DetectorSettings(alpha=0.01, confidence=FamilySettings(method="confidence.bbsd"))
    verdict = detect(ref, cur, tuned)
    assert verdict.families["confidence"].kind == "confidence.bbsd"
    assert {r.alpha for r in verdict.results} == {0.0025}
    assert any(f.name == "p(class 0)" for f in verdict.families["confidence"].features)


def _result(family: str, p: float, alpha: float) -> DriftResult:
    return DriftResult(family, family, "m", 0.0, p, 0.0, 0.1, alpha, p < alpha, 10, 10)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.001, 0.05)), min_size=1, max_size=6))
def test_the_combined_p_value_is_weighted_bonferroni(pairs: list[tuple[float, float]]) -> None:
    results = [_result(f"f{i}", p, a) for i, (p, a) in enumerate(pairs)]
    verdict = combine(results)
    budget = sum(a for _, a in pairs)
    expected = min(1.0, min(p * budget / a for p, a in pairs))
    assert verdict.alpha == pytest.approx(budget)
    assert verdict.p_value == pytest.approx(expected)
    # p < budget exactly when some family is significant at its own share.
    any_share = any(p < a for p, a in pairs)
    if not np.isclose(verdict.p_value, budget):
        assert (verdict.p_value < verdict.alpha) == any_share
    assert verdict.drifted == any(r.drifted for r in results)
