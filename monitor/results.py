"""The one result type every detector family returns.

A result records what was actually applied (method, alpha, effect-size floor, sample sizes) so a
stored row explains itself months later. Detectors make these; the policy reads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """How one feature (a pixel statistic, a class, a component) moved.

    ``ref_value``/``cur_value`` are the summary compared (a mean, a frequency, a rate);
    ``change`` is relative (``cur/ref - 1``) when ``relative`` else absolute (``cur - ref``).
    """

    name: str
    statistic: float
    p_value: float | None
    effect_size: float
    ref_value: float
    cur_value: float
    drifted: bool
    relative: bool = True

    @property
    def change(self) -> float:
        if self.relative:
            return self.cur_value / self.ref_value - 1.0 if self.ref_value else float("inf")
        return self.cur_value - self.ref_value

    def describe(self) -> str:
        """A short human line: ``brightness −18%`` or ``class 7: 9.0% → 2.0%``."""
        if self.relative:
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
