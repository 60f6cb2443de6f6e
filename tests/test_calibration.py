"""False alarms under no shift: one budget for the window's verdict, at every window size.

For window sizes 10 to 10,000 we score windows drawn from the reference's distribution (fixed
seeds) with every family at the default settings and count the windows whose combined verdict
is an alarm (:func:`monitor.detect`), and, per family, those significant at its share of the
budget. The bound is alpha plus three binomial standard errors. Embeddings are 32-d to keep the
test fast; the tests' calibration does not depend on the dimension.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor import detect
from monitor.detectors import registry
from monitor.detectors.base import ProfileBase
from monitor.detectors.simulate import synthetic_batch
from monitor.settings import DetectorSettings, FamilySettings

N_WINDOWS = 120
DIM = 32
SIZES = (10, 100, 1_000, 10_000)


@pytest.fixture(scope="module")
def profiles() -> dict[str, ProfileBase]:
    ref = synthetic_batch(10_000, seed=10_000, dim=DIM)
    return registry.fit_all(ref, DetectorSettings(), "calibration", seed=0)


def _limit(alpha: float, n_windows: int) -> float:
    return alpha * n_windows + 3.0 * math.sqrt(n_windows * alpha * (1.0 - alpha))


@pytest.mark.parametrize("n", SIZES)
def test_the_verdict_keeps_its_false_alarm_budget(n: int, profiles: dict[str, ProfileBase]) -> None:
    settings = DetectorSettings()
    alarms, significant = 0, 0
    per_family = dict.fromkeys(registry.FAMILIES, 0)
    p_values = []
    for w in range(N_WINDOWS):
        verdict = detect(profiles, synthetic_batch(n, seed=n * 1000 + w, dim=DIM), settings)
        assert verdict.alpha == pytest.approx(settings.alpha)
        alarms += verdict.drifted
        significant += verdict.significant
        p_values.append(verdict.p_value)
        for r in verdict.results:
            per_family[r.family] += r.p_value is not None and r.p_value < r.alpha
    limit = _limit(settings.alpha, N_WINDOWS)
    assert significant <= limit, f"n={n}: {significant}/{N_WINDOWS} windows significant"
    assert alarms <= significant  # the floors only ever remove alarms
    share = settings.alpha / len(registry.FAMILIES)
    for family, count in per_family.items():
        assert count <= _limit(share, N_WINDOWS), f"{family} n={n}: {count} at alpha {share}"
    # The combined p-value is a p-value: not piled up near 0 (uniform or conservative).
    assert np.mean(np.array(p_values) < 0.5) <= 0.5 + 3 * math.sqrt(0.25 / N_WINDOWS)


def test_small_windows_are_not_deaf() -> None:
    """A 10-image window of very dark images alarms although its effect is measured on 10 rows."""
    ref = synthetic_batch(5000, seed=1, dim=DIM)
    verdict = detect(ref, synthetic_batch(10, seed=2, dim=DIM, brightness=-0.6))
    assert verdict.drifted and verdict.families["pixel"].drifted


def test_the_floor_is_what_keeps_big_windows_quiet() -> None:
    """A real but negligible shift is significant at n=10,000 and still not an alarm."""
    ref = synthetic_batch(10_000, seed=1, dim=DIM, embeddings=False)
    cur = synthetic_batch(10_000, seed=2, dim=DIM, embeddings=False, brightness=-0.02)
    pixel = detect(ref, cur).families["pixel"]
    assert pixel.p_value is not None and pixel.p_value < pixel.alpha
    assert pixel.effect_size < pixel.threshold
    assert not pixel.drifted
    assert np.isfinite(pixel.effect_size)


@pytest.mark.parametrize("kind", ["confidence.bbsd", "embedding.pca_ks"])
def test_every_other_kind_keeps_its_share(kind: str) -> None:
    family = registry.family_of(kind)
    settings = DetectorSettings(**{family: FamilySettings(method=kind)})
    ref = synthetic_batch(10_000, seed=7, dim=DIM)
    profile = registry.fit_all(ref, settings, "m")[family]
    cfg = registry.family_settings(settings, "m", family)
    assert cfg.alpha is not None
    for n in SIZES:
        hits = sum(
            verdict.families[family].p_value < cfg.alpha  # type: ignore[operator]
            for verdict in (
                detect({family: profile}, synthetic_batch(n, seed=n + w, dim=DIM), settings)
                for w in range(N_WINDOWS)
            )
        )
        assert hits <= _limit(cfg.alpha, N_WINDOWS), f"{kind} n={n}: {hits}/{N_WINDOWS}"
