"""What every detector family shares: the profile serialisation, the protocol and the decision.

A family is one module exporting ``SPEC`` (a :class:`FamilySpec`: its kinds as data),
``fit(ref, cfg, *, seed=0) -> Profile`` and ``score(profile, cur, cfg) -> DriftResult`` (the
:class:`Family` protocol). Its profile is a
frozen dataclass deriving from :class:`ProfileBase`, whose fields are numpy arrays, numbers,
strings or tuples of strings; :meth:`ProfileBase.to_bytes` writes them to an ``.npz`` archive
(arrays as arrays, the rest as one JSON entry), never pickle.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any, ClassVar, Protocol, Self, TypeVar

import numpy as np

from monitor.batch import LogBatch
from monitor.errors import DriftwatchError
from monitor.results import DriftResult, FeatureDrift
from monitor.settings import FamilySettings
from monitor.stats import cohens_h
from monitor.stats.outliers import (
    OutlierModel,
    exceedance_p_value,
    fit_outliers,
    held_above,
    outlier_scores,
)

#: Reference quantile of the outlier threshold (1% of reference logs lie above it).
OUTLIER_QUANTILE = 0.99
#: Cohen's h an outlier share must move by to alarm in a window of ``floor_min_rows`` or more.
OUTLIER_H_FLOOR = 0.2


class ProfileError(DriftwatchError):
    """A stored profile cannot be read: unknown kind, newer schema, or a corrupt payload."""


class MissingInputError(DriftwatchError):
    """The logs lack what a family needs (e.g. no embeddings); the registry skips the family."""


P = TypeVar("P", bound="ProfileBase")

_META = "__meta__"


@dataclasses.dataclass(frozen=True, eq=False)
class ProfileBase:
    """Serialisation shared by every family's profile (subclass fields only, no behaviour).

    >>> from monitor.detectors import classes
    >>> from monitor.detectors.simulate import synthetic_batch
    >>> prof = classes.fit(synthetic_batch(300, seed=0), FamilySettings(method="classes.chi2"))
    >>> back = classes.ClassesProfile.from_bytes(prof.to_bytes())
    >>> back.kind, back.n_ref, bool((back.counts == prof.counts).all())
    ('classes.chi2', 300, True)
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    kind: str
    n_ref: int

    @property
    def schema_version(self) -> int:
        return self.SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        """The profile as an ``.npz`` archive (arrays as arrays, the rest as JSON)."""
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"schema_version": self.SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            else:
                meta[f.name] = list(value) if isinstance(value, tuple) else value
        arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> Self:
        """Inverse of :meth:`to_bytes`; raises :class:`ProfileError` on a bad payload."""
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
                data = {name: npz[name] for name in npz.files}
            meta = json.loads(data.pop(_META).tobytes().decode())
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise ProfileError(f"cannot read {cls.__name__} payload: {exc}") from exc
        version = meta.pop("schema_version", None)
        if version != cls.SCHEMA_VERSION:
            raise ProfileError(
                f"{cls.__name__} schema_version {version} is not {cls.SCHEMA_VERSION}"
            )
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = data[f.name]
            elif f.name in meta:
                v = meta[f.name]
                values[f.name] = tuple(v) if isinstance(v, list) else v
            elif f.default is not dataclasses.MISSING:  # a field added later: its default
                values[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
            else:
                raise ProfileError(f"{cls.__name__} payload lacks field {f.name!r}")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class KindSpec:
    """One detector kind, declared once by its family: everything else reads it from here."""

    name: str  # stable, stored with profiles and results: "embedding.mmd"
    profile: type[ProfileBase]
    floor: float  # default effect-size floor, in ``unit``
    unit: str  # what the effect size measures: "MMD^2", "KS D", "Cohen's w" ...
    display: str  # how people read it: "kernel MMD (random Fourier features)"


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """A family's name, how alerts speak of it, its paging rank and its kinds (default first)."""

    name: str
    display: str
    runbook: str
    page_rank: int  # lower pages first when several families alert in one window
    kinds: tuple[KindSpec, ...]

    def kind(self, method: str | None) -> KindSpec:
        """The kind ``method`` names (the family's default for ``None``).

        >>> from monitor.detectors.classes import SPEC
        >>> SPEC.kind(None).name, SPEC.kind("classes.psi").unit
        ('classes.chi2', 'PSI')
        """
        if method is None:
            return self.kinds[0]
        for spec in self.kinds:
            if spec.name == method:
                return spec
        known = tuple(k.name for k in self.kinds)
        raise ValueError(f"unknown {self.name} method {method!r}; known: {known}")

    def settle(self, cfg: FamilySettings, alpha: float | None = None) -> FamilySettings:
        """``cfg`` with every unset field filled: the kind, its floor and the alpha share.

        ``alpha`` is the family's share of the family-wise budget (the registry passes it);
        a family called on its own uses :data:`DEFAULT_FAMILY_ALPHA`.

        >>> from monitor.detectors.embedding import SPEC
        >>> SPEC.settle(FamilySettings(alpha=0.001)).effect_floor
        0.002
        """
        kind = self.kind(cfg.method)
        return cfg.model_copy(
            update={
                "method": kind.name,
                "alpha": cfg.alpha if cfg.alpha is not None else alpha or DEFAULT_FAMILY_ALPHA,
                "effect_floor": kind.floor if cfg.effect_floor is None else cfg.effect_floor,
            }
        )


#: The alpha of a family scored on its own: the default budget 0.05 over the four families.
DEFAULT_FAMILY_ALPHA = 0.0125


class Family(Protocol):
    """The module-level interface of a detector family."""

    SPEC: FamilySpec

    def fit(self, ref: LogBatch, cfg: FamilySettings, *, seed: int = 0) -> ProfileBase: ...

    def score(self, profile: Any, cur: LogBatch, cfg: FamilySettings) -> DriftResult: ...


def outlier_fields(ref: np.ndarray, seed: int) -> dict[str, Any]:
    """The stored form of an outlier model fitted on the rows of ``ref`` (empty if too few).

    The model and its threshold come from :func:`monitor.stats.outliers.fit_outliers`: fitted
    on one half of the reference, thresholded at the :data:`OUTLIER_QUANTILE` of the other.
    """
    model = fit_outliers(
        LogBatch(
            probs=np.zeros((len(ref), 1)), predicted=np.zeros(len(ref), np.int64), embeddings=ref
        ),
        OUTLIER_QUANTILE,
        seed,
    )
    if model is None:
        return {}
    return {
        "out_columns": model.columns,
        "out_mean": model.mean,
        "out_scale": model.scale,
        "out_whiten": model.whiten,
        "out_threshold": model.threshold,
        "out_held": len(ref) // 2,
    }


def outlier_feature(profile: Any, x: np.ndarray, cfg: FamilySettings) -> FeatureDrift | None:
    """The share of the window's logs above the profile's outlier threshold against the
    reference's (``1 - OUTLIER_QUANTILE`` of the held-out half), by the exact one-sided test
    of :func:`monitor.stats.outliers.exceedance_p_value` (Fisher's on the counts, with the
    held-out count the threshold leaves); the statistic is the share's z-score.
    None without an outlier model.
    """
    if len(profile.out_mean) == 0 or len(x) == 0:
        return None
    model = OutlierModel(
        "embedding",
        profile.out_columns,
        profile.out_mean,
        profile.out_scale,
        profile.out_whiten,
        profile.out_threshold,
        OUTLIER_QUANTILE,
        0.0,
        int(x.shape[1]),
    )
    scores = outlier_scores(model, x)
    above = int(np.sum(scores > profile.out_threshold))
    held = int(profile.out_held)
    ref_above = held_above(held, OUTLIER_QUANTILE)
    share_ref, share_cur = ref_above / max(held, 1), above / len(x)
    # One-sided: only more outliers is a partial shift.
    p_one = exceedance_p_value(above, len(x), held, OUTLIER_QUANTILE)
    z = (share_cur - share_ref) / max(np.sqrt(share_ref * (1 - share_ref) / len(x)), 1e-12)
    effect = abs(float(cohens_h(np.array([share_ref]), np.array([share_cur]))[0]))
    return with_p(
        FeatureDrift("outliers", float(z), p_one, effect, share_ref, share_cur, False, False),
        p_one,
        cfg,
        len(x),
    )


def with_p(feature: FeatureDrift, p_value: float, cfg: FamilySettings, n_cur: int) -> FeatureDrift:
    """The outlier ``feature`` with an adjusted p-value, its decision redone (floor: Cohen's h
    :data:`OUTLIER_H_FLOOR`)."""
    h_floor = cfg.model_copy(update={"effect_floor": OUTLIER_H_FLOOR})
    return dataclasses.replace(
        feature, p_value=p_value, drifted=decide(p_value, feature.effect_size, h_floor, n_cur)
    )


def reservoir(n: int, cap: int, seed: int) -> np.ndarray:
    """Sorted indices of a uniform sample of ``min(n, cap)`` of ``n`` rows (seeded).

    >>> reservoir(5, 10, 0).tolist(), len(reservoir(100, 10, 0))
    ([0, 1, 2, 3, 4], 10)
    """
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def alpha_of(cfg: FamilySettings) -> float:
    """The alpha of a settled ``cfg`` (:data:`DEFAULT_FAMILY_ALPHA` when unset).

    >>> alpha_of(FamilySettings()), alpha_of(FamilySettings(alpha=0.01))
    (0.0125, 0.01)
    """
    return DEFAULT_FAMILY_ALPHA if cfg.alpha is None else cfg.alpha


def floor_of(cfg: FamilySettings) -> float:
    """The effect floor of a settled ``cfg`` (0 when unset).

    >>> floor_of(FamilySettings(effect_floor=0.1))
    0.1
    """
    return 0.0 if cfg.effect_floor is None else cfg.effect_floor


def decide(p_value: float | None, effect: float, cfg: FamilySettings, n_cur: int) -> bool:
    """The one decision rule: significant (``p < alpha``), and not trivial.

    The effect floor only suppresses a move in windows of at least ``cfg.floor_min_rows``
    rows, where the test finds moves too small to matter; a smaller window that is
    significant is an alarm whatever its effect, so the floor never makes it deaf. (Severity
    is the policy's: effect against floor x multiple.) A statistic without a p-value is decided
    on its effect alone.

    >>> cfg = FamilySettings(alpha=0.01, effect_floor=0.1, floor_min_rows=2000)
    >>> decide(0.001, 0.2, cfg, 5000), decide(0.001, 0.05, cfg, 5000), decide(0.001, 0.05, cfg, 500)
    (True, False, True)
    >>> decide(0.02, 0.5, cfg, 500), decide(None, 0.05, cfg, 500)
    (False, False)
    """
    alpha, floor = alpha_of(cfg), floor_of(cfg)
    if p_value is None:
        return bool(effect >= floor)
    large = effect >= floor or n_cur < cfg.floor_min_rows
    return bool(p_value < alpha and large)


def finite(x: float, default: float = 0.0) -> float:
    """``x`` as a float, or ``default`` when it is NaN or infinite.

    >>> finite(float("nan")), finite(2.5)
    (0.0, 2.5)
    """
    v = float(x)
    return v if np.isfinite(v) else default
