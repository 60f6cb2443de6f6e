"""Confidence drift: the max-softmax and entropy distributions and the low-confidence rate.

Three features: max softmax probability, predictive entropy (nats) and the share of predictions
below :data:`LOW_CONFIDENCE` (an early warning of inputs the model has not seen). Their
p-values (KS for the two distributions; for the rate a two-proportion z-test, or Fisher's exact
test when an expected count is below 5, :func:`monitor.stats.proportion_test`) are Holm-adjusted
together. The z-test alone is invalid for small counts: 0 low-confidence predictions of 360 in
the reference against 1 of 10 in a window gives p = 6e-9, Fisher's exact test p = 0.027. The
effect size depends on the kind: PSI (``confidence.psi``), Jensen-Shannon distance
(``confidence.js``), both over ten reference-quantile bins (two bins for the rate), or the KS
statistic itself (``confidence.ks``). ``confidence.bbsd`` adds black-box shift detection
(Lipton et al. 2018, Rabanser et al. 2019): a KS test on every softmax output, Holm-adjusted
together with the three features above, effect = KS D.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

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
    reservoir,
)
from monitor.results import DriftResult, FeatureDrift
from monitor.settings import FamilySettings
from monitor.stats import (
    adjust_pvalues,
    bin_counts,
    js_distance,
    ks_columns,
    proportion_test,
    psi,
    quantile_edges,
    shares,
)

FAMILY = "confidence"
LOW_CONFIDENCE = 0.5
N_BINS = 10
REF_ROWS = 10_000
#: Added to every bin's count before PSI / JS so empty bins stay finite.
PSEUDO_COUNT = 0.5
NAMES = ("max softmax", "entropy", f"low confidence (<{LOW_CONFIDENCE:g})")


@dataclass(frozen=True, eq=False)
class ConfidenceProfile(ProfileBase):
    """Reference confidence/entropy sample, bin edges and counts, and the low-confidence rate."""

    sample: np.ndarray  # (<= REF_ROWS, 2): max softmax, entropy; each column sorted
    edges_conf: np.ndarray
    edges_entropy: np.ndarray
    counts_conf: np.ndarray
    counts_entropy: np.ndarray
    mean: np.ndarray  # (2,)
    low_count: int


@dataclass(frozen=True, eq=False)
class BbsdProfile(ConfidenceProfile):
    """The confidence profile plus a sample of every softmax output (columns sorted)."""

    probs: np.ndarray  # (<= REF_ROWS, C)


SPEC = FamilySpec(
    name=FAMILY,
    display="confidence",
    runbook="The model is less sure of itself: check low-confidence inputs, then labels "
    "as they arrive; accuracy may be dropping.",
    page_rank=2,
    kinds=(
        KindSpec("confidence.ks", ConfidenceProfile, 0.1, "KS D", "KS + rate test"),
        KindSpec("confidence.psi", ConfidenceProfile, 0.1, "PSI", "KS + rate test, PSI effect"),
        KindSpec("confidence.js", ConfidenceProfile, 0.05, "JS distance", "KS + rate, JS effect"),
        KindSpec("confidence.bbsd", BbsdProfile, 0.1, "KS D", "KS on every softmax output"),
    ),
)
KINDS = tuple(k.name for k in SPEC.kinds)


def features_of(batch: LogBatch) -> np.ndarray:
    """``(N, 2)``: max softmax and entropy (nats) of each prediction.

    >>> p = np.array([[1.0, 0.0], [0.5, 0.5]])
    >>> features_of(LogBatch(probs=p, predicted=np.array([0, 0]))).round(4).tolist()
    [[1.0, 0.0], [0.5, 0.6931]]
    """
    p = np.asarray(batch.probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = 0.0 - np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    return np.column_stack([p.max(axis=1) if p.size else np.zeros(len(p)), ent])


def fit(ref: LogBatch, cfg: FamilySettings, *, seed: int = 0) -> ConfidenceProfile:
    """Profile the reference's confidence.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> prof = fit(synthetic_batch(2000, seed=0), FamilySettings(method="confidence.psi"))
    >>> prof.kind, prof.sample.shape, len(prof.counts_conf) == len(prof.edges_conf) + 1
    ('confidence.psi', (2000, 2), True)
    """
    kind = SPEC.kind(cfg.method).name
    x = features_of(ref)
    edges_conf = quantile_edges(x[:, 0], N_BINS)
    edges_entropy = quantile_edges(x[:, 1], N_BINS)
    rows = reservoir(len(x), REF_ROWS, seed)
    profile = ConfidenceProfile(
        kind=kind,
        n_ref=len(ref),
        sample=np.sort(x[rows], axis=0),
        edges_conf=edges_conf,
        edges_entropy=edges_entropy,
        counts_conf=bin_counts(x[:, 0], edges_conf),
        counts_entropy=bin_counts(x[:, 1], edges_entropy),
        mean=x.mean(axis=0) if len(x) else np.zeros(2),
        low_count=int(np.sum(x[:, 0] < LOW_CONFIDENCE)),
    )
    if kind != "confidence.bbsd":
        return profile
    probs = np.sort(np.asarray(ref.probs, dtype=np.float64)[rows], axis=0)
    fields = {f.name: getattr(profile, f.name) for f in dataclasses.fields(profile)}
    return BbsdProfile(**fields, probs=probs)


def _softmax_outputs(profile: ConfidenceProfile, cur: LogBatch) -> tuple[np.ndarray, ...]:
    """KS statistics, raw p-values, reference and window means of every softmax output."""
    if not isinstance(profile, BbsdProfile):
        return (np.zeros(0),) * 4
    probs = np.asarray(cur.probs, dtype=np.float64)
    if probs.ndim != 2:
        raise MissingInputError(f"window probabilities have shape {probs.shape}")
    k = min(probs.shape[1], profile.probs.shape[1])  # outputs both sides have
    ref, probs = profile.probs[:, :k], probs[:, :k]
    tests = ks_columns(ref, probs, ref_sorted=True)
    cur_mean = probs.mean(axis=0) if len(probs) else np.zeros(ref.shape[1])
    return tests.statistic, tests.p_value, ref.mean(axis=0), cur_mean


def _effects(kind: str, ref_counts: list[np.ndarray], cur_counts: list[np.ndarray]) -> np.ndarray:
    out = []
    for r, c in zip(ref_counts, cur_counts, strict=True):
        rs, cs = shares(r, PSEUDO_COUNT), shares(c, PSEUDO_COUNT)
        out.append(float(psi(rs, cs)) if kind == "confidence.psi" else float(js_distance(rs, cs)))
    return np.array(out)


def score(profile: ConfidenceProfile, cur: LogBatch, cfg: FamilySettings) -> DriftResult:
    """Compare a window's confidence with the profile.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> cfg = FamilySettings(method="confidence.psi", alpha=0.01, effect_floor=0.1)
    >>> prof = fit(synthetic_batch(5000, seed=0), cfg)
    >>> score(prof, synthetic_batch(1000, seed=1, temperature=2.0), cfg).drifted
    True
    >>> score(prof, synthetic_batch(1000, seed=2), cfg).drifted
    False
    """
    cfg = SPEC.settle(cfg)
    x = features_of(cur)
    n, m = profile.n_ref, len(cur)
    tests = ks_columns(profile.sample, x, ref_sorted=True)
    low_cur = int(np.sum(x[:, 0] < LOW_CONFIDENCE))
    z, p_low = proportion_test(np.array([profile.low_count]), n, np.array([low_cur]), m)
    bb_stat, bb_p, bb_ref, bb_cur = _softmax_outputs(profile, cur)
    adjusted = adjust_pvalues(np.concatenate([tests.p_value, p_low, bb_p]), "holm")
    rate_ref = profile.low_count / n if n else 0.0
    rate_cur = low_cur / m if m else 0.0
    if profile.kind in ("confidence.ks", "confidence.bbsd"):
        effect = np.array([*tests.statistic, abs(rate_cur - rate_ref), *bb_stat])
    else:
        ref_counts = [
            profile.counts_conf,
            profile.counts_entropy,
            np.array([profile.low_count, n - profile.low_count]),
        ]
        cur_counts = [
            bin_counts(x[:, 0], profile.edges_conf),
            bin_counts(x[:, 1], profile.edges_entropy),
            np.array([low_cur, m - low_cur]),
        ]
        effect = _effects(profile.kind, ref_counts, cur_counts)
    cur_mean = x.mean(axis=0) if m else np.zeros(2)
    stats = np.array([*tests.statistic, abs(float(z[0])), *bb_stat])
    refs = [float(profile.mean[0]), float(profile.mean[1]), rate_ref, *bb_ref.tolist()]
    curs = [float(cur_mean[0]), float(cur_mean[1]), rate_cur, *bb_cur.tolist()]
    names = [*NAMES, *(f"p(class {k})" for k in range(len(bb_stat)))]
    features = tuple(
        FeatureDrift(
            name=names[j],
            statistic=float(stats[j]),
            p_value=float(adjusted[j]),
            effect_size=finite(effect[j]),
            ref_value=refs[j],
            cur_value=curs[j],
            drifted=decide(float(adjusted[j]), finite(effect[j]), cfg, m),
            relative=j < 2,
            unit=None if j < 3 else "value",
        )
        for j in range(len(names))
    )
    significant = adjusted < alpha_of(cfg)
    pool = np.flatnonzero(significant) if significant.any() else np.arange(len(names))
    top = int(pool[np.argmax(effect[pool])])
    p_value = float(adjusted.min())
    return DriftResult(
        family=FAMILY,
        kind=profile.kind,
        method=f"{profile.kind}+ks+holm",
        statistic=float(stats[top]),
        p_value=p_value,
        effect_size=finite(effect[top]),
        threshold=floor_of(cfg),
        alpha=alpha_of(cfg),
        drifted=decide(p_value, finite(effect[top]), cfg, m),
        n_ref=n,
        n_cur=m,
        features=features,
    )
