"""Embedding drift: a multivariate two-sample test on penultimate-layer embeddings.

Two kinds share one profile (a bounded, seeded sample of reference embeddings, the Gaussian
kernel bandwidth from the median heuristic, and a PCA fitted on the sample):

- ``embedding.mmd`` (default): MMD test (Gretton et al. 2012) with a Gaussian kernel
  approximated by :data:`N_FEATURES` random Fourier features, on every distinct row of the
  window against the reference sample: an exact permutation test while both together have at
  most :data:`PERMUTATION_ROWS` rows, above that the linear-time test with its analytic null
  (:func:`monitor.stats.mmd_rff_gaussian`), so large windows keep a full-sample test's power at
  a cost linear in their size; effect size = unbiased MMD^2.
- ``embedding.pca_ks``: KS test on each of the first :data:`N_COMPONENTS` principal components,
  Holm-adjusted (Rabanser et al. 2019, "Failing loudly"); effect size = Wasserstein-1 distance
  in reference standard deviations of the component.

Per-component KS results are reported as features by both kinds (where the embedding moved).
The window's distinct rows are subsampled by a hash of their content, not their position, so a
window's result does not depend on the order of its rows; repeated rows count once. Pass
``device`` to run the MMD with torch (CPU or CUDA); the default is numpy.
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
from monitor.stats import (
    adjust_pvalues,
    fit_pca,
    ks_columns,
    median_gamma,
    mmd_rff_gaussian,
    mmd_test,
)

FAMILY = "embedding"
#: Reference embeddings kept in the profile.
REF_ROWS = 2000
#: Reference + window rows up to which the MMD null comes from permutations.
PERMUTATION_ROWS = 3000
#: Window rows used by the MMD (a content-hashed sample beyond that).
MAX_ROWS = 100_000
#: Random Fourier features approximating the Gaussian kernel.
N_FEATURES = 128
N_PERMUTATIONS = 200
N_COMPONENTS = 16
#: Columns hashed first by :func:`distinct_rows`.
HASH_COLUMNS = 16
#: Window rows used by ``embedding.pca_ks`` (a content-hashed sample beyond that).
PCA_ROWS = 5000


@dataclass(frozen=True, eq=False)
class EmbeddingProfile(ProfileBase):
    """Reference embedding sample, kernel bandwidth and PCA projection."""

    sample: np.ndarray  # (<= REF_ROWS, D) float32
    gamma: float
    pca_mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D)
    projected: np.ndarray  # (<= REF_ROWS, k): the sample in PCA coordinates, columns sorted
    scale: np.ndarray  # (k,) std of each component (>= 1e-6)
    seed: int
    # The per-log outlier model (monitor.detectors.base.outlier_fields); empty in old profiles.
    out_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    out_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    out_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    out_whiten: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    out_threshold: float = 0.0
    out_held: int = 0


SPEC = FamilySpec(
    name=FAMILY,
    display="embedding",
    runbook="Inputs look different to the model: compare recent thumbnails with the "
    "reference, check for a new camera, source or preprocessing change.",
    page_rank=3,
    kinds=(
        KindSpec("embedding.mmd", EmbeddingProfile, 0.002, "MMD^2", "kernel MMD"),
        KindSpec("embedding.pca_ks", EmbeddingProfile, 0.1, "Wasserstein (sd)", "PCA + KS"),
    ),
)
KINDS = tuple(k.name for k in SPEC.kinds)


def _embeddings(batch: LogBatch, what: str) -> np.ndarray:
    if batch.embeddings is None:
        raise MissingInputError(f"the {what} logs carry no embeddings")
    emb = np.asarray(batch.embeddings)
    if emb.ndim != 2 or emb.shape[1] == 0:
        raise MissingInputError(f"the {what} embeddings have shape {emb.shape}")
    return emb


def fit(ref: LogBatch, cfg: FamilySettings, *, seed: int = 0) -> EmbeddingProfile:
    """Profile the reference embeddings.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> prof = fit(synthetic_batch(3000, seed=0), FamilySettings(method="embedding.mmd"))
    >>> prof.kind, prof.sample.shape, prof.components.shape
    ('embedding.mmd', (2000, 128), (16, 128))
    """
    kind = SPEC.kind(cfg.method).name
    emb = _embeddings(ref, "reference")
    sample = emb[reservoir(len(emb), REF_ROWS, seed)].astype(np.float32)
    sample = sample[np.sort(distinct_rows(sample, seed))]
    # The projection is fitted on rows the KS tests never see: components fitted on the test's
    # own reference rows overfit its variance, and windows then look "narrower" (false alarms).
    held = np.setdiff1d(np.arange(len(emb)), reservoir(len(emb), REF_ROWS, seed))
    if len(sample) < 4:  # too few distinct rows to split: nothing to overfit either
        pca_rows, ks_rows = sample, sample
    elif len(held) >= min(len(sample), 2 * N_COMPONENTS):
        pca_rows = emb[held[reservoir(len(held), REF_ROWS, seed + 1)]]
        ks_rows = sample
    else:
        half = np.random.default_rng(seed + 1).permutation(len(sample))
        pca_rows, ks_rows = sample[half[::2]], sample[half[1::2]]
    mean, comps, _ = fit_pca(pca_rows, N_COMPONENTS)
    projected = (ks_rows - mean) @ comps.T
    return EmbeddingProfile(
        kind=kind,
        n_ref=len(ref),
        sample=sample,
        gamma=median_gamma(sample, seed=seed),
        pca_mean=mean,
        components=comps,
        projected=np.sort(projected, axis=0),
        scale=np.maximum(projected.std(axis=0), 1e-6),
        seed=seed,
        **outlier_fields(np.asarray(emb, dtype=np.float64), seed),
    )


def distinct_rows(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices of the distinct rows of ``x``, in an order that depends on their values only.

    Rows are ordered by a seeded hash of their bytes, so the first ``k`` indices are a
    pseudo-random sample that the order of the rows cannot change. Repeated rows are kept once:
    a repeated input carries no new information about the input distribution, and repeats break
    the exchangeability the permutation test relies on (a window resampled with replacement
    from a small pool would otherwise look "clumpier" than the reference and raise alarms).

    >>> x = np.arange(12, dtype=np.float32).reshape(6, 2)
    >>> same = x[distinct_rows(x)] == x[::-1][distinct_rows(x[::-1])]
    >>> bool(same.all()), len(distinct_rows(np.vstack([x, x[:2]])))
    (True, 6)
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    # Hash a few columns first (cheap); if different rows share a key there, hash them all.
    for cols in (bits[:, :HASH_COLUMNS], bits):
        wide = cols.astype(np.uint64)
        mult = np.random.default_rng(seed).integers(1, 2**32, size=wide.shape[1], dtype=np.uint64)
        # Multiply-add hash modulo 2**64 (numpy integer arithmetic wraps around).
        key = (wide * (mult | np.uint64(1))).sum(axis=1) * np.uint64(0x9E3779B97F4A7C15)
        order = np.argsort(key, kind="stable")
        same = np.flatnonzero(key[order][1:] == key[order][:-1])
        if same.size == 0:
            return order
        rows = bits[order]
        equal = (rows[same + 1] == rows[same]).all(axis=1)
        if equal.all():
            keep = np.ones(len(order), dtype=bool)
            keep[same + 1] = False
            return order[keep]
    # Different rows with one 64-bit key over every column: order by the bits themselves.
    order = np.lexsort(bits.T[::-1])
    rows = bits[order]
    repeat = (rows[1:] == rows[:-1]).all(axis=1)
    return order[np.r_[True, ~repeat]]


def score(
    profile: EmbeddingProfile, cur: LogBatch, cfg: FamilySettings, *, device: str | None = None
) -> DriftResult:
    """Compare a window's embeddings with the profile.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> cfg = FamilySettings(method="embedding.mmd", alpha=0.01, effect_floor=0.002)
    >>> prof = fit(synthetic_batch(4000, seed=0), cfg)
    >>> score(prof, synthetic_batch(500, seed=1, embedding_shift=1.0), cfg).drifted
    True
    >>> score(prof, synthetic_batch(500, seed=2), cfg).drifted
    False
    """
    cfg = SPEC.settle(cfg)
    emb = _embeddings(cur, "window")
    dim = profile.sample.shape[1]
    if emb.shape[1] != dim:
        raise MissingInputError(f"window embeddings have {emb.shape[1]} dimensions, profile {dim}")
    order = distinct_rows(emb, profile.seed)
    if profile.kind == "embedding.pca_ks":
        return _score_pca_ks(profile, emb[order[:PCA_ROWS]], len(emb), cfg)
    picked = emb[order[:MAX_ROWS]]
    if len(profile.sample) + len(picked) <= PERMUTATION_ROWS:
        test = mmd_test(
            profile.sample,
            picked,
            profile.gamma,
            n_permutations=N_PERMUTATIONS,
            max_rows=PERMUTATION_ROWS,
            n_features=N_FEATURES,
            seed=profile.seed,
            device=device,
        )
        null = f"perm={N_PERMUTATIONS}"
    else:
        test = mmd_rff_gaussian(profile.sample, picked, profile.gamma, N_FEATURES, profile.seed)
        null = "gaussian"
    effect = max(test.statistic, 0.0)
    features = _component_features(profile, picked[:PCA_ROWS], cfg)
    p_value, drifted = test.p_value, decide(test.p_value, effect, cfg, len(emb))
    outliers = outlier_feature(profile, np.asarray(picked), cfg)
    if outliers is not None:  # Holm over the two tests: the whole window and its outliers
        p_mmd, p_out = adjust_pvalues(np.array([test.p_value, outliers.p_value]), "holm")
        outliers = with_p(outliers, float(p_out), cfg, len(emb))
        p_value = float(min(p_mmd, p_out))
        drifted = decide(float(p_mmd), effect, cfg, len(emb)) or outliers.drifted
        features = (outliers, *features)
    return DriftResult(
        family=FAMILY,
        kind=profile.kind,
        method=f"mmd-rff(n={test.n_x}x{test.n_y},{null})" + ("+outliers" if outliers else ""),
        statistic=test.statistic,
        p_value=p_value,
        effect_size=effect,
        threshold=floor_of(cfg),
        alpha=alpha_of(cfg),
        drifted=drifted,
        n_ref=profile.n_ref,
        n_cur=len(emb),
        features=features,
    )


def _component_features(
    profile: EmbeddingProfile, emb: np.ndarray, cfg: FamilySettings
) -> tuple[FeatureDrift, ...]:
    """Per-component KS (Holm) and Wasserstein effects: where in the embedding it moved."""
    proj = (np.asarray(emb, dtype=np.float64) - profile.pca_mean) @ profile.components.T
    tests = ks_columns(profile.projected, proj, ref_sorted=True)
    adjusted = adjust_pvalues(tests.p_value, "holm")
    effect = tests.wasserstein / profile.scale
    # Component means in reference standard deviations (the reference mean is about 0).
    ref_mean = profile.projected.mean(axis=0) / profile.scale
    cur_mean = proj.mean(axis=0) / profile.scale if len(proj) else np.zeros_like(ref_mean)
    return tuple(
        FeatureDrift(
            name=f"pc{j + 1}",
            statistic=float(tests.statistic[j]),
            p_value=float(adjusted[j]),
            effect_size=finite(effect[j]),
            ref_value=float(ref_mean[j]),
            cur_value=float(cur_mean[j]),
            drifted=decide(float(adjusted[j]), finite(effect[j]), cfg, len(proj)),
            relative=False,
            unit="sd",
        )
        for j in range(len(effect))
    )


def _score_pca_ks(
    profile: EmbeddingProfile, emb: np.ndarray, n_cur: int, cfg: FamilySettings
) -> DriftResult:
    features = _component_features(profile, emb, cfg)
    features = tuple(
        FeatureDrift(
            name=f.name,
            statistic=f.statistic,
            p_value=f.p_value,
            effect_size=f.effect_size,
            ref_value=f.ref_value,
            cur_value=f.cur_value,
            relative=False,
            unit="sd",
            drifted=decide(f.p_value, f.effect_size, cfg, n_cur),
        )
        for f in features
    )
    adjusted = np.array([f.p_value for f in features])
    effect = np.array([f.effect_size for f in features])
    significant = adjusted < alpha_of(cfg)
    pool = np.flatnonzero(significant) if significant.any() else np.arange(len(features))
    top = int(pool[np.argmax(effect[pool])])
    p_value = float(adjusted.min())
    return DriftResult(
        family=FAMILY,
        kind=profile.kind,
        method=f"pca{len(features)}-ks+holm",
        statistic=features[top].statistic,
        p_value=p_value,
        effect_size=float(effect[top]),
        threshold=floor_of(cfg),
        alpha=alpha_of(cfg),
        drifted=decide(p_value, float(effect[top]), cfg, n_cur),
        n_ref=profile.n_ref,
        n_cur=n_cur,
        features=features,
    )
