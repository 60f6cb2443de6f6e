"""Pixel-statistic drift: per-statistic KS tests with Holm control and a Wasserstein effect size.

Each statistic (brightness, contrast, sharpness ...) gets a two-sample KS test against a bounded
reference sample; Holm's procedure turns the per-statistic p-values into one family-wise
decision, and the effect size is the Wasserstein-1 distance in reference standard deviations
(Evidently's normed Wasserstein), so a large window cannot flag a negligible move. A statistic
drifts when its Holm-adjusted p-value is below alpha and its effect reaches the floor; the
result names it with its direction and relative change (brightness 18% lower).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monitor.batch import LogBatch
from monitor.detectors.base import (
    FamilySpec,
    KindSpec,
    MissingInputError,
    ProfileBase,
    alpha_of,
    decide,
    finite,
    floor_of,
    outlier_feature,
    outlier_fields,
    reservoir,
    with_p,
)
from monitor.results import DriftResult, FeatureDrift
from monitor.settings import FamilySettings
from monitor.stats import adjust_pvalues, ks_columns

FAMILY = "pixel"
#: Reference rows kept for the KS tests (the test stays exact against this sample).
REF_ROWS = 10_000
#: Smallest reference scale used to normalise the Wasserstein distance (as Evidently).
MIN_SCALE = 1e-3


@dataclass(frozen=True, eq=False)
class PixelProfile(ProfileBase):
    """A bounded sample of the reference's pixel statistics, with their means and scales."""

    names: tuple[str, ...]
    sample: np.ndarray  # (<= REF_ROWS, K) float64, each column sorted (NaN last)
    mean: np.ndarray  # (K,) over the whole reference
    scale: np.ndarray  # (K,) max(std, MIN_SCALE) over the whole reference
    # The per-log outlier model (monitor.detectors.base.outlier_fields); empty in old profiles.
    out_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    out_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    out_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    out_whiten: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    out_threshold: float = 0.0
    out_held: int = 0


SPEC = FamilySpec(
    name=FAMILY,
    display="pixel statistics",
    runbook="Image statistics moved: check camera exposure/focus, image pipeline and "
    "resizing; the listed statistics say which.",
    page_rank=0,
    kinds=(KindSpec("pixel.ks", PixelProfile, 0.1, "Wasserstein (sd)", "KS per statistic"),),
)
KINDS = tuple(k.name for k in SPEC.kinds)


def _nan_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = ~np.isnan(x)
    count = ok.sum(axis=0)
    safe = np.where(ok, x, 0.0)
    mean = np.where(count > 0, safe.sum(axis=0) / np.maximum(count, 1), 0.0)
    var = np.where(ok, (x - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
    return mean, np.sqrt(var)


def fit(ref: LogBatch, cfg: FamilySettings, *, seed: int = 0) -> PixelProfile:
    """Profile the reference's pixel statistics.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> prof = fit(synthetic_batch(1000, seed=0), FamilySettings(method="pixel.ks"))
    >>> prof.kind, prof.sample.shape
    ('pixel.ks', (1000, 13))
    """
    if ref.pixel is None:
        raise MissingInputError("the reference logs carry no pixel statistics")
    kind = SPEC.kind(cfg.method).name
    pix = np.asarray(ref.pixel, dtype=np.float64)
    mean, std = _nan_moments(pix)
    return PixelProfile(
        kind=kind,
        n_ref=len(ref),
        names=tuple(ref.pixel_names),
        sample=np.sort(pix[reservoir(len(pix), REF_ROWS, seed)], axis=0),
        mean=mean,
        scale=np.maximum(std, MIN_SCALE),
        **outlier_fields(pix, seed),
    )


def score(profile: PixelProfile, cur: LogBatch, cfg: FamilySettings) -> DriftResult:
    """Compare a window's pixel statistics with the profile.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> cfg = FamilySettings(method="pixel.ks", alpha=0.01, effect_floor=0.1)
    >>> prof = fit(synthetic_batch(5000, seed=0), cfg)
    >>> res = score(prof, synthetic_batch(1000, seed=2, brightness=-0.18), cfg)
    >>> res.drifted, res.top_features(1)[0].describe()
    (True, 'brightness −18%')
    >>> score(prof, synthetic_batch(1000, seed=3), cfg).drifted
    False
    """
    cfg = SPEC.settle(cfg)
    if cur.pixel is None:
        raise MissingInputError("the window's logs carry no pixel statistics")
    where = {name: i for i, name in enumerate(cur.pixel_names)}
    cols = [i for i, name in enumerate(profile.names) if name in where]
    if not cols:
        raise MissingInputError("the window shares no pixel statistic with the profile")
    cur_pix = np.asarray(cur.pixel, dtype=np.float64)[:, [where[profile.names[i]] for i in cols]]
    tests = ks_columns(profile.sample[:, cols], cur_pix, ref_sorted=True)
    whole = len(cols) == len(profile.names)  # the outlier model needs every statistic
    outliers = outlier_feature(profile, cur_pix, cfg) if whole else None
    extra = [] if outliers is None else [outliers.p_value]
    adjusted_all = adjust_pvalues(np.concatenate([tests.p_value, extra]), "holm")
    adjusted = adjusted_all[: len(cols)]
    effect = tests.wasserstein / profile.scale[cols]
    cur_mean, _ = _nan_moments(cur_pix)
    significant = adjusted < alpha_of(cfg)
    features = tuple(
        FeatureDrift(
            name=profile.names[c],
            statistic=float(tests.statistic[j]),
            p_value=float(adjusted[j]),
            effect_size=finite(effect[j]),
            ref_value=float(profile.mean[c]),
            cur_value=float(cur_mean[j]),
            drifted=decide(float(adjusted[j]), finite(effect[j]), cfg, len(cur)),
        )
        for j, c in enumerate(cols)
    )
    pool = np.flatnonzero(significant) if significant.any() else np.arange(len(cols))
    top = int(pool[np.argmax(effect[pool])])
    p_value = float(adjusted_all.min())
    top_effect = finite(effect[top])
    drifted = decide(float(adjusted[top]), top_effect, cfg, len(cur))
    if outliers is not None:
        outliers = with_p(outliers, float(adjusted_all[-1]), cfg, len(cur))
        drifted = drifted or outliers.drifted
        features = (outliers, *features)
    return DriftResult(
        family=FAMILY,
        kind=profile.kind,
        method=f"{profile.kind}+holm",
        statistic=float(tests.statistic[top]),
        p_value=p_value,
        effect_size=top_effect,
        threshold=floor_of(cfg),
        alpha=alpha_of(cfg),
        drifted=drifted,
        n_ref=profile.n_ref,
        n_cur=len(cur),
        features=features,
    )
