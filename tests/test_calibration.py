"""False alarms under no shift: each family's alarm rate stays at or under its alpha.

For every family and window size (100, 1,000, 10,000) we score 200 windows drawn from the same
distribution as the reference (fixed seed) and count alarms. The bound is alpha plus three
binomial standard errors. The p-value keeps small windows honest; the effect-size floor keeps
the large ones honest. Embeddings are 32-d here to keep the test fast; the permutation test's
calibration does not depend on the dimension.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.batch import LogBatch
from monitor.detectors import registry
from monitor.detectors.base import ProfileBase
from monitor.detectors.simulate import synthetic_batch
from monitor.settings import FAMILIES, DetectorSettings, Family

N_WINDOWS = 200
ALPHA = 0.05
DIM = 32


def _settings() -> DetectorSettings:
    base = DetectorSettings()
    return DetectorSettings(
        **{f: getattr(base, f).model_copy(update={"alpha": ALPHA}) for f in FAMILIES}
    )


@pytest.fixture(scope="module")
def profiles() -> dict[Family, ProfileBase]:
    ref = synthetic_batch(10_000, seed=10_000, dim=DIM)
    return dict(registry.fit_all(ref, _settings(), "calibration", seed=0))


def _window(family: Family, n: int, seed: int) -> LogBatch:
    return synthetic_batch(
        n, seed=seed, dim=DIM, embeddings=family == "embedding", pixel=family == "pixel"
    )


def _limit(alpha: float, n_windows: int) -> float:
    return alpha * n_windows + 3.0 * math.sqrt(n_windows * alpha * (1.0 - alpha))


@pytest.mark.parametrize("family", FAMILIES)
def test_alarm_rate_at_most_alpha_at_every_window_size(
    family: Family, profiles: dict[Family, ProfileBase]
) -> None:
    settings = _settings()
    cfg = settings.for_model("calibration", family)
    module = registry.FAMILIES[family]
    limit = _limit(cfg.alpha, N_WINDOWS)
    for n in (100, 1_000, 10_000):
        alarms = 0
        p_small = 0
        for w in range(N_WINDOWS):
            result = module.score(profiles[family], _window(family, n, seed=n * 1000 + w), cfg)
            alarms += result.drifted
            p_small += result.p_value is not None and result.p_value < cfg.alpha
        assert alarms <= limit, f"{family} n={n}: {alarms}/{N_WINDOWS} alarms > {limit:.1f}"
        if n == 100:
            # Small windows are kept honest by the p-value alone, not by the floor.
            assert p_small <= limit, f"{family} n={n}: {p_small} p-values < alpha"


def test_the_floor_is_what_keeps_big_windows_quiet() -> None:
    """A real but negligible shift is significant at n=10,000 and still not an alarm."""
    settings = _settings()
    cfg = settings.for_model("calibration", "pixel")
    ref = synthetic_batch(10_000, seed=1, dim=DIM, embeddings=False)
    profile = registry.FAMILIES["pixel"].fit(ref, cfg)
    cur = synthetic_batch(10_000, seed=2, dim=DIM, embeddings=False, brightness=-0.02)
    result = registry.FAMILIES["pixel"].score(profile, cur, cfg)
    assert result.p_value is not None and result.p_value < cfg.alpha
    assert result.effect_size < cfg.effect_floor
    assert not result.drifted
    assert np.isfinite(result.effect_size)
