"""The one result type every detector family returns.

A result records what was actually applied (method, alpha, effect-size floor, sample sizes) so a
stored row explains itself months later. Detectors make these; the policy reads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: How a feature's ``ref_value``/``cur_value`` read: ``relative`` (a level whose change is
#: ``cur/ref - 1``, e.g. brightness), ``share`` (a proportion in [0, 1], e.g. a class's share),
#: ``sd`` (a location in reference standard deviations, e.g. a principal component's mean) or
#: ``value`` (any other number, compared by ``cur - ref``).
Unit = Literal["relative", "share", "sd", "value"]

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """How one feature (a pixel statistic, a class, a component) moved.

    ``ref_value``/``cur_value`` are the summary compared (a mean, a frequency, a rate) in
    ``unit`` (:data:`Unit`); ``change`` is relative (``cur/ref - 1``) when ``relative`` else
    absolute (``cur - ref``). ``unit`` defaults from ``relative`` (``relative`` or ``share``),
    so results stored before it existed read as before.

    >>> FeatureDrift("brightness", 0.3, 0.001, 0.4, 100.0, 82.0, True).describe()
    'brightness −18%'
    >>> FeatureDrift("class 7", 0.2, 0.001, 0.2, 0.09, 0.02, True, relative=False).describe()
    'class 7: 9.0% → 2.0%'
    >>> FeatureDrift("pc1", 0.4, 0.001, 0.5, 0.01, 1.26, True, relative=False,
    ...              unit="sd").describe()
    'pc1: +0.01 → +1.26 sd'
    """

    name: str
    statistic: float
    p_value: float | None
    effect_size: float
    ref_value: float
    cur_value: float
    drifted: bool
    relative: bool = True
    unit: Unit | None = None

    @property
    def unit_of(self) -> Unit:
        """``unit``, or the one implied by ``relative`` when it was not given."""
        if self.unit is not None:
            return self.unit
        return "relative" if self.relative else "share"

    @property
    def change(self) -> float:
        if self.relative:
            return self.cur_value / self.ref_value - 1.0 if self.ref_value else float("inf")
        return self.cur_value - self.ref_value

    def describe(self) -> str:
        """A short line: ``brightness −18%``, ``class 7: 9.0% → 2.0%``, ``pc1: +0.01 → +1.26 sd``."""
        unit = self.unit_of
        if unit == "sd":
            return f"{self.name}: {self.ref_value:+.2f} → {self.cur_value:+.2f} sd"
        if unit == "value":
            return f"{self.name}: {self.ref_value:.3g} → {self.cur_value:.3g}"
        if unit == "relative":
            change = self.change
            if change == float("inf"):
                return f"{self.name} new (0 → {self.cur_value:.3g})"
            return f"{self.name} {'+' if change >= 0 else '−'}{abs(change) * 100:.0f}%"
        return f"{self.name}: {self.ref_value * 100:.1f}% → {self.cur_value * 100:.1f}%"


@dataclass(frozen=True, slots=True)
class DriftResult:
    """The outcome of comparing one window with a reference profile for one family."""

    family: str
    kind: str
    method: str
    statistic: float
    p_value: float | None
    effect_size: float
    threshold: float
    alpha: float
    drifted: bool
    n_ref: int
    n_cur: int
    features: tuple[FeatureDrift, ...] = field(default_factory=tuple)
    schema_version: int = RESULT_SCHEMA_VERSION

    def top_features(self, n: int = 3) -> tuple[FeatureDrift, ...]:
        """The ``n`` features that moved most, drifted ones first."""
        ranked = sorted(self.features, key=lambda f: (not f.drifted, -abs(f.effect_size)))
        return tuple(ranked[:n])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        values = dict(data)
        values["features"] = tuple(FeatureDrift(**f) for f in values.get("features", ()))
        return cls(**values)
