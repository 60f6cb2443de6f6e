"""Class-distribution drift: predicted-class frequencies against the reference.

The omnibus test is Pearson's chi-square test of homogeneity on the 2 x K table of counts
(a two-sample test, so it stays honest when the reference is not much larger than the window);
classes empty on both sides are dropped, and classes never seen in the reference are valid
categories. The effect size depends on the kind: Cohen's w corrected for the bias of sampling
noise (``classes.chi2``, :func:`monitor.stats.cohens_w_adjusted`), PSI (``classes.psi``) or
Jensen-Shannon distance (``classes.js``) over smoothed shares. The plug-in w of two samples of
one distribution is about ``sqrt((K - 1) (1/n + 1/m) / 4)`` (0.08 for 10 classes and a
reference of 360), so with a small reference a large clean window would reach a 0.1 floor by
chance; the corrected w estimates the true effect whatever the sample sizes. Each class is
reported with its share before and after, a Holm-adjusted two-proportion p-value (Fisher's
exact test where counts are small) and Cohen's h.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.batch import LogBatch
from monitor.detectors.base import (
    FamilySpec,
    KindSpec,
    ProfileBase,
    alpha_of,
    decide,
    finite,
    floor_of,
)
from monitor.results import DriftResult, FeatureDrift
from monitor.settings import FamilySettings
from monitor.stats import (
    adjust_pvalues,
    align_counts,
    chi2_homogeneity,
    cohens_h,
    cohens_w_adjusted,
    js_distance,
    proportion_test,
    psi,
    shares,
)

FAMILY = "classes"
PSEUDO_COUNT = 0.5


@dataclass(frozen=True, eq=False)
class ClassesProfile(ProfileBase):
    """Predicted-class counts of the reference (index = class id)."""

    counts: np.ndarray


SPEC = FamilySpec(
    name=FAMILY,
    display="predicted classes",
    runbook="Predicted classes shifted: check whether the real mix changed (season, "
    "source) or the model started confusing classes.",
    page_rank=1,
    kinds=(
        KindSpec("classes.chi2", ClassesProfile, 0.1, "Cohen's w", "chi-square"),
        KindSpec("classes.psi", ClassesProfile, 0.1, "PSI", "chi-square, PSI effect"),
        KindSpec("classes.js", ClassesProfile, 0.1, "JS distance", "chi-square, JS effect"),
    ),
)
KINDS = tuple(k.name for k in SPEC.kinds)


def counts_of(batch: LogBatch, min_classes: int = 0) -> np.ndarray:
    """Predicted-class counts, at least ``max(min_classes, probs columns)`` long.

    >>> counts_of(LogBatch(probs=np.eye(3)[[0, 2, 2]], predicted=np.array([0, 2, 2]))).tolist()
    [1, 0, 2]
    """
    pred = np.asarray(batch.predicted, dtype=np.int64)
    if pred.size and pred.min() < 0:
        raise ValueError("predicted classes must be non-negative")
    return np.bincount(pred, minlength=max(min_classes, batch.n_classes))


def fit(ref: LogBatch, cfg: FamilySettings, *, seed: int = 0) -> ClassesProfile:
    """Profile the reference's class frequencies.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> fit(synthetic_batch(100, seed=0), FamilySettings(method="classes.chi2")).counts.sum()
    np.int64(100)
    """
    kind = SPEC.kind(cfg.method).name
    return ClassesProfile(kind=kind, n_ref=len(ref), counts=counts_of(ref))


def score(profile: ClassesProfile, cur: LogBatch, cfg: FamilySettings) -> DriftResult:
    """Compare a window's class frequencies with the profile.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> cfg = FamilySettings(method="classes.chi2", alpha=0.01, effect_floor=0.1)
    >>> prof = fit(synthetic_batch(5000, seed=0), cfg)
    >>> rare7 = np.where(np.arange(10) == 7, 0.2, 1.0)
    >>> res = score(prof, synthetic_batch(1000, seed=1, class_weights=rare7), cfg)
    >>> res.drifted, res.top_features(1)[0].name
    (True, 'class 7')
    >>> score(prof, synthetic_batch(1000, seed=2), cfg).drifted
    False
    """
    cfg = SPEC.settle(cfg)
    ref_counts, cur_counts = align_counts(profile.counts, counts_of(cur, len(profile.counts)))
    n, m = float(ref_counts.sum()), float(cur_counts.sum())
    stat, p_value, _ = chi2_homogeneity(ref_counts, cur_counts)
    rs, cs = shares(ref_counts, PSEUDO_COUNT), shares(cur_counts, PSEUDO_COUNT)
    if profile.kind == "classes.psi":
        effect = float(psi(rs, cs))
    elif profile.kind == "classes.js":
        effect = float(js_distance(rs, cs))
    else:
        effect = cohens_w_adjusted(ref_counts, cur_counts)
    present = np.flatnonzero((ref_counts + cur_counts) > 0)
    _, p_cls = proportion_test(ref_counts[present], n, cur_counts[present], m)
    adj = adjust_pvalues(p_cls, "holm")
    ref_share = ref_counts[present] / max(n, 1.0)
    cur_share = cur_counts[present] / max(m, 1.0)
    h = cohens_h(ref_share, cur_share)
    features = tuple(
        FeatureDrift(
            name=f"class {k}",
            statistic=float(h[j]),
            p_value=float(adj[j]),
            effect_size=float(h[j]),
            ref_value=float(ref_share[j]),
            cur_value=float(cur_share[j]),
            drifted=decide(float(adj[j]), float(h[j]), cfg, len(cur)),
            relative=False,
        )
        for j, k in enumerate(present)
    )
    return DriftResult(
        family=FAMILY,
        kind=profile.kind,
        method=f"{profile.kind}+chi2",
        statistic=finite(stat),
        p_value=p_value,
        effect_size=finite(effect),
        threshold=floor_of(cfg),
        alpha=alpha_of(cfg),
        drifted=decide(p_value, finite(effect), cfg, len(cur)),
        n_ref=profile.n_ref,
        n_cur=len(cur),
        features=features,
    )
