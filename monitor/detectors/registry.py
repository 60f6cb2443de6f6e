"""Stable string kinds for every detector, and the calls that run all families at once.

A kind (``"embedding.mmd"``, ``"pixel.ks"`` ...) names both the statistic a family applies and
the profile type it stores; stored profiles and results carry it, with the profile's
``schema_version``, so moving a module never orphans stored data. Each family module declares
its kinds once in ``SPEC`` (:class:`~monitor.detectors.base.FamilySpec`); everything here is
read from those declarations, so adding a family is one module and one line in
:data:`FAMILIES`.

The family-wise false-alarm budget (:attr:`DetectorSettings.alpha`) is split evenly across the
enabled families (Bonferroni; each family's own features are Holm-adjusted inside it), so the
window's any-family alarm keeps that rate whatever the dependence between families.
"""

from __future__ import annotations

from types import ModuleType

from monitor.batch import LogBatch
from monitor.detectors import classes, confidence, embedding, pixel
from monitor.detectors.base import (
    FamilySpec,
    KindSpec,
    MissingInputError,
    ProfileBase,
    ProfileError,
)
from monitor.results import DriftResult
from monitor.settings import DetectorSettings, FamilySettings

#: Family name -> its module (each exports ``SPEC``, ``fit`` and ``score``).
FAMILIES: dict[str, ModuleType] = {
    "embedding": embedding,
    "pixel": pixel,
    "confidence": confidence,
    "classes": classes,
}


def specs() -> dict[str, FamilySpec]:
    """Family name -> its declared spec, in registry order."""
    return {name: module.SPEC for name, module in FAMILIES.items()}


def kind_specs() -> dict[str, KindSpec]:
    """Kind name -> its declared spec, over every registered family."""
    return {k.name: k for spec in specs().values() for k in spec.kinds}


#: Kind -> profile class (of the built-in families; :func:`kind_specs` sees added ones too).
PROFILE_TYPES: dict[str, type[ProfileBase]] = {k: s.profile for k, s in kind_specs().items()}

KINDS: tuple[str, ...] = tuple(PROFILE_TYPES)


def family_of(kind: str) -> str:
    """The family a kind belongs to.

    >>> family_of("embedding.mmd")
    'embedding'
    """
    for name, spec in specs().items():
        if any(k.name == kind for k in spec.kinds):
            return name
    raise ProfileError(f"unknown detector kind {kind!r}; known: {', '.join(kind_specs())}")


def page_order(families: list[str]) -> list[str]:
    """``families`` sorted by their declared paging rank (unknown ones last).

    >>> page_order(["embedding", "classes", "pixel"])
    ['pixel', 'classes', 'embedding']
    """
    ranks = {name: spec.page_rank for name, spec in specs().items()}
    return sorted(families, key=lambda f: ranks.get(f, len(ranks)))


def enabled(detector_settings: DetectorSettings, model: str) -> list[str]:
    """The families enabled for ``model``, in registry order."""
    return [f for f in FAMILIES if detector_settings.for_model(model, f).enabled]


def family_settings(detector_settings: DetectorSettings, model: str, family: str) -> FamilySettings:
    """The settings ``family`` runs with for ``model``, every default filled in.

    Per-model overrides merge field by field; an unset floor is the kind's declared one; an
    unset alpha is the family's even share of the family-wise ``alpha``.

    >>> s = DetectorSettings(overrides={"digits": {"embedding": FamilySettings(alpha=0.001)}})
    >>> cfg = family_settings(s, "digits", "embedding")
    >>> cfg.method, cfg.alpha, cfg.effect_floor
    ('embedding.mmd', 0.001, 0.002)
    >>> family_settings(DetectorSettings(), "m", "pixel").alpha
    0.0125
    """
    cfg = detector_settings.for_model(model, family)
    share = detector_settings.alpha / max(len(enabled(detector_settings, model)), 1)
    settled: FamilySettings = FAMILIES[family].SPEC.settle(cfg, share)
    return settled


def effect_floor(detector_settings: DetectorSettings, model: str, family: str) -> float:
    """The effect floor ``family`` uses for ``model`` (in its kind's unit)."""
    floor = family_settings(detector_settings, model, family).effect_floor
    return 0.0 if floor is None else floor


def fit_all(
    ref: LogBatch, detector_settings: DetectorSettings, model: str, seed: int = 0
) -> dict[str, ProfileBase]:
    """Fit the profile of every enabled family whose inputs the reference carries.

    Families with missing inputs (e.g. logs without embeddings) are left out, not failed.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> sorted(fit_all(synthetic_batch(500, embeddings=False), DetectorSettings(), "m"))
    ['classes', 'confidence', 'pixel']
    """
    profiles: dict[str, ProfileBase] = {}
    for name in enabled(detector_settings, model):
        cfg = family_settings(detector_settings, model, name)
        try:
            profiles[name] = FAMILIES[name].fit(ref, cfg, seed=seed)
        except MissingInputError:
            continue
    return profiles


def score_all(
    profiles: dict[str, ProfileBase],
    cur: LogBatch,
    detector_settings: DetectorSettings,
    model: str,
    *,
    device: str | None = None,
) -> list[DriftResult]:
    """Score a window against every enabled family's profile, in family order.

    Families without a profile, disabled ones and those whose inputs the window lacks are
    skipped. ``device`` (``"cpu"``, ``"cuda"``) runs the embedding test with torch; the other
    families are numpy only.

    Examples
    --------
    >>> from monitor.detectors.simulate import synthetic_batch
    >>> settings = DetectorSettings()
    >>> profiles = fit_all(synthetic_batch(3000, seed=0), settings, "digits")
    >>> results = score_all(profiles, synthetic_batch(1000, seed=1, brightness=-0.3), settings,
    ...                     "digits")
    >>> [(r.family, r.drifted) for r in results]
    [('embedding', False), ('pixel', True), ('confidence', False), ('classes', False)]
    """
    results: list[DriftResult] = []
    for name in enabled(detector_settings, model):
        profile = profiles.get(name)
        if profile is None:
            continue
        cfg = family_settings(detector_settings, model, name)
        try:
            options = {"device": device} if device is not None and name == "embedding" else {}
            results.append(FAMILIES[name].score(profile, cur, cfg, **options))
        except MissingInputError:
            continue
    return results


def load_profile(kind: str, schema_version: int, payload: bytes) -> ProfileBase:
    """Rebuild a stored profile; raises :class:`ProfileError` if it cannot be read.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> p = fit_all(synthetic_batch(200), DetectorSettings(), "m")["classes"]
    >>> load_profile(p.kind, p.schema_version, p.to_bytes()).counts.tolist() == p.counts.tolist()
    True
    """
    spec = kind_specs().get(kind)
    if spec is None:
        raise ProfileError(f"unknown detector kind {kind!r}; known: {', '.join(kind_specs())}")
    cls = spec.profile
    if schema_version != cls.SCHEMA_VERSION:
        raise ProfileError(
            f"{kind} profile schema_version {schema_version} is not {cls.SCHEMA_VERSION}"
        )
    profile = cls.from_bytes(payload)
    if profile.kind != kind:
        raise ProfileError(f"payload holds a {profile.kind} profile, not {kind}")
    return profile


def score_one(profile: ProfileBase, cur: LogBatch, cfg: FamilySettings) -> DriftResult:
    """Score one profile of any kind (the family is read from its kind).

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> cfg = FamilySettings(method="classes.psi")
    >>> prof = FAMILIES["classes"].fit(synthetic_batch(500, seed=0), cfg)
    >>> score_one(prof, synthetic_batch(200, seed=1), cfg).kind
    'classes.psi'
    """
    result: DriftResult = FAMILIES[family_of(profile.kind)].score(profile, cur, cfg)
    return result
