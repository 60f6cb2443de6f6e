"""Stable string kinds for every detector, and the calls that run all families at once.

A kind (``"embedding.mmd"``, ``"pixel.ks"`` ...) names both the statistic a family applies and
the profile type it stores; stored profiles and results carry it, with the profile's
``schema_version``, so moving a module never orphans stored data. Adding a family is one module
and one line in :data:`FAMILIES`.
"""

from __future__ import annotations

from types import ModuleType

from monitor.batch import LogBatch
from monitor.detectors import classes, confidence, embedding, pixel
from monitor.detectors.base import MissingInputError, ProfileBase, ProfileError
from monitor.results import DriftResult
from monitor.settings import FAMILIES as FAMILY_NAMES
from monitor.settings import DetectorSettings, Family, FamilySettings

#: Family name -> its module (each exports ``KINDS``, ``fit`` and ``score``).
FAMILIES: dict[Family, ModuleType] = {
    "embedding": embedding,
    "pixel": pixel,
    "confidence": confidence,
    "classes": classes,
}

#: Kind -> profile class.
PROFILE_TYPES: dict[str, type[ProfileBase]] = {
    **{k: embedding.EmbeddingProfile for k in embedding.KINDS},
    **{k: pixel.PixelProfile for k in pixel.KINDS},
    **{k: confidence.ConfidenceProfile for k in confidence.KINDS},
    **{k: classes.ClassesProfile for k in classes.KINDS},
}

KINDS: tuple[str, ...] = tuple(PROFILE_TYPES)


def family_of(kind: str) -> Family:
    """The family a kind belongs to.

    >>> family_of("embedding.mmd")
    'embedding'
    """
    for name, module in FAMILIES.items():
        if kind in module.KINDS:
            return name
    raise ProfileError(f"unknown detector kind {kind!r}; known: {', '.join(KINDS)}")


def fit_all(
    ref: LogBatch, detector_settings: DetectorSettings, model: str, seed: int = 0
) -> dict[Family, ProfileBase]:
    """Fit the profile of every enabled family whose inputs the reference carries.

    Families with missing inputs (e.g. logs without embeddings) are left out, not failed.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> sorted(fit_all(synthetic_batch(500, embeddings=False), DetectorSettings(), "m"))
    ['classes', 'confidence', 'pixel']
    """
    profiles: dict[Family, ProfileBase] = {}
    for name in FAMILY_NAMES:
        cfg = detector_settings.for_model(model, name)
        if not cfg.enabled:
            continue
        try:
            profiles[name] = FAMILIES[name].fit(ref, cfg, seed=seed)
        except MissingInputError:
            continue
    return profiles


def score_all(
    profiles: dict[Family, ProfileBase],
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
    for name in FAMILY_NAMES:
        profile = profiles.get(name)
        cfg = detector_settings.for_model(model, name)
        if profile is None or not cfg.enabled:
            continue
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
    cls = PROFILE_TYPES.get(kind)
    if cls is None:
        raise ProfileError(f"unknown detector kind {kind!r}; known: {', '.join(KINDS)}")
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
