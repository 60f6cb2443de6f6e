"""A window's impact as the policy and the alerts read it: estimate, drop, realized, verdicts.

:func:`impact_of` turns a stored estimate into an :class:`Impact`; :meth:`Impact.evidence` is
the JSON an alert keeps, and :func:`describe` words it for people (from the JSON, so a stored
alert reads the same months later).

>>> from monitor.impact.estimate import Interval
>>> imp = Impact(Interval(0.874, 0.85, 0.898, 0.012, 500), Interval(0.95, 0.94, 0.96, 0.005, 1000),
...              Interval(0.076, 0.051, 0.101, 0.013, 500), None, None, False, 0.12)
>>> describe(imp.evidence())
'estimated accuracy 87.4% (−7.6 pts vs reference 95.0%, 95% interval −10.1 to −5.1 pts)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.impact.estimate import Interval, accuracy_drop, disagrees, z_of
from monitor.settings import ImpactSettings
from monitor.store.impact_tables import WindowEstimateRow

MINUS = "\u2212"


@dataclass(frozen=True)
class Impact:
    """Accuracy of one window: estimated (label-free), its drop from the reference, realized
    (when enough labels have arrived) and whether the labels contradict the estimate."""

    estimated: Interval
    reference: Interval
    drop: Interval
    realized: Interval | None
    realized_drop: Interval | None
    disagrees: bool
    outlier_share: float | None
    level: float = 0.95

    def evidence(self) -> dict[str, Any]:
        """JSON for an alert's evidence (shares, not points)."""
        return {
            "estimated": self.estimated.to_dict(),
            "reference": self.reference.to_dict(),
            "drop": self.drop.to_dict(),
            "realized": None if self.realized is None else self.realized.to_dict(),
            "realized_drop": None if self.realized_drop is None else self.realized_drop.to_dict(),
            "disagrees": self.disagrees,
            "outlier_share": self.outlier_share,
            "level": self.level,
        }


def impact_of(row: WindowEstimateRow, settings: ImpactSettings) -> Impact:
    """The :class:`Impact` of a stored estimate under ``settings``."""

    def iv(value: float, low: float, high: float, se: float, n: int) -> Interval:
        return Interval(float(value), float(low), float(high), float(se), int(n))

    estimated = iv(
        row.estimated_accuracy, row.estimated_low, row.estimated_high, row.estimated_se, row.n
    )
    half = z_of(row.level) * row.reference_se
    reference = iv(
        row.reference_accuracy,
        row.reference_accuracy - half,
        row.reference_accuracy + half,
        row.reference_se,
        0,
    )
    drop = accuracy_drop(reference, estimated, row.level)
    realized = realized_drop = None
    if row.realized_accuracy is not None and row.n_labelled >= settings.min_realized_labels:
        se = (row.realized_accuracy * (1 - row.realized_accuracy) / row.n_labelled) ** 0.5
        realized = iv(
            row.realized_accuracy,
            row.realized_low if row.realized_low is not None else row.realized_accuracy,
            row.realized_high if row.realized_high is not None else row.realized_accuracy,
            se,
            row.n_labelled,
        )
        base = row.reference_realized if row.reference_realized is not None else reference.value
        realized_drop = accuracy_drop(iv(base, base, base, reference.se, 0), realized, row.level)
    disagree = realized is not None and disagrees(
        estimated, realized, settings.disagreement_points / 100
    )
    return Impact(
        estimated, reference, drop, realized, realized_drop, disagree, row.outlier_share, row.level
    )


def _pts(share: float) -> str:
    value = share * 100
    return f"{MINUS if value < 0 else '+'}{abs(value):.1f}"


def describe(evidence: dict[str, Any]) -> str:
    """One line about an impact's JSON: the estimate, the drop and its interval, and what the
    labels say when they have arrived."""
    est, ref, drop = evidence["estimated"], evidence["reference"], evidence["drop"]
    level = float(evidence.get("level", 0.95))
    line = (
        f"estimated accuracy {est['value']:.1%} ({_pts(-drop['value'])} pts vs reference "
        f"{ref['value']:.1%}, {level:.0%} interval {_pts(-drop['high'])} to "
        f"{_pts(-drop['low'])} pts)"
    )
    realized = evidence.get("realized")
    if realized is not None:
        line += f"; realized {realized['value']:.1%} on {realized['n']} labels"
        if evidence.get("disagrees"):
            line += (
                ": labels DISAGREE with the estimate (concept shift or confidently wrong "
                "inputs): trust the labels"
            )
    return line
