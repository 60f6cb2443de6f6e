"""What an alert says, independent of the channel that carries it.

An on-call engineer woken at 3 a.m. needs: which model and version, which family, how far the
statistic is past its threshold, how big the effect is, what moved ("brightness −18%",
"class 7: 9.0% → 2.0%"), which window, a dashboard link and what to do first; and whether it
hurts: the estimated accuracy drop (in the title) and a link to the window's worst images (in the
runbook line, which every channel carries).

>>> from datetime import UTC, datetime
>>> from monitor.results import DriftResult, FeatureDrift
>>> r = DriftResult("pixel", "pixel.ks", "ks", 0.41, 1e-9, 0.41, 0.1, 0.01, True, 500, 500,
...                 (FeatureDrift("brightness", 0.41, 1e-9, 0.41, 100.0, 82.0, True),))
>>> ev = evidence_from_result(r)
>>> t = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
>>> msg = AlertMessage.build(alert_id=7, event="trigger", model="digits", version="v1",
...     family="pixel", severity="critical", evidence={**ev, "window_start": t.isoformat(),
...     "window_end": t.isoformat()}, dashboard_url="http://grafana/d/x", runbook_url="http://rb")
>>> msg.title
'[CRITICAL] drift in digits v1 (pixel): brightness −18%'
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from monitor.detectors.registry import specs
from monitor.impact.view import describe
from monitor.results import DriftResult

Event = Literal["trigger", "acknowledge", "resolve", "test"]


def dedup_key(model: str, version: str, family: str, alert_id: int) -> str:
    """The key that ties every message of one alert together (PagerDuty ``dedup_key``)."""
    return f"driftwatch/{model}/{version}/{family}/{alert_id}"


def runbook_anchor(url: str, anchor: str) -> str:
    """``url`` pointing at the runbook section ``anchor`` (replacing any fragment).

    >>> runbook_anchor("https://rb/driftwatch#old", "drift-pixel")
    'https://rb/driftwatch#drift-pixel'
    """
    return f"{url.split('#', 1)[0]}#{anchor}"


def evidence_from_result(result: DriftResult, n_features: int = 3) -> dict[str, Any]:
    """The JSON evidence of a result that an alert quotes."""
    return {
        "kind": result.kind,
        "method": result.method,
        "statistic": result.statistic,
        "threshold": result.threshold,
        "p_value": result.p_value,
        "alpha": result.alpha,
        "effect_size": result.effect_size,
        "n_ref": result.n_ref,
        "n_cur": result.n_cur,
        "top_features": [f.describe() for f in result.top_features(n_features)],
    }


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One message about one alert, ready for any channel."""

    alert_id: int
    event: Event
    model: str
    version: str
    family: str
    severity: str
    method: str
    statistic: float
    threshold: float
    p_value: float | None
    effect_size: float
    top_features: tuple[str, ...]
    window_start: str
    window_end: str
    dashboard_url: str
    runbook: str
    runbook_url: str
    dedup_key: str
    reason: str
    also_drifting: tuple[str, ...] = ()
    impact: str = ""  # "estimated accuracy 87.4% (−7.6 pts vs reference ...)", "" without one
    estimated_drop_points: float | None = None
    realized_drop_points: float | None = None
    worst_images_url: str = ""
    reopen_count: int = 0

    @classmethod
    def build(
        cls,
        *,
        alert_id: int,
        event: Event,
        model: str,
        version: str,
        family: str,
        severity: str,
        evidence: dict[str, Any],
        dashboard_url: str,
        runbook_url: str,
        reopen_count: int = 0,
    ) -> AlertMessage:
        """A message from an alert's stored evidence (see :func:`evidence_from_result`)."""
        query = urlencode({"var-model": model, "var-version": version, "var-family": family})
        impact = evidence.get("impact")
        worst = str(evidence.get("worst_images_url", ""))
        spec = specs().get(family)
        runbook = spec.runbook if spec else "Check the dashboard for what moved."
        return cls(
            alert_id=alert_id,
            event=event,
            model=model,
            version=version,
            family=family,
            severity=severity,
            method=str(evidence.get("method", "")),
            statistic=float(evidence.get("statistic", 0.0)),
            threshold=float(evidence.get("threshold", 0.0)),
            p_value=evidence.get("p_value"),
            effect_size=float(evidence.get("effect_size", 0.0)),
            top_features=tuple(evidence.get("top_features", ())),
            window_start=str(evidence.get("window_start", "")),
            window_end=str(evidence.get("window_end", "")),
            dashboard_url=f"{dashboard_url}?{query}",
            runbook=f"{runbook} Worst images of the window: {worst}" if worst else runbook,
            runbook_url=runbook_anchor(runbook_url, f"drift-{family}"),
            dedup_key=dedup_key(model, version, family, alert_id),
            reason=str(evidence.get("reason", "")),
            also_drifting=tuple(evidence.get("also_drifting", ())),
            impact=describe(impact) if impact else "",
            estimated_drop_points=None if not impact else float(impact["drop"]["value"]) * 100,
            realized_drop_points=None
            if not impact or not impact.get("realized_drop")
            else float(impact["realized_drop"]["value"]) * 100,
            worst_images_url=worst,
            reopen_count=reopen_count,
        )

    @property
    def message_id(self) -> str:
        """The same on every retry of this event of this alert (``webhook-id``, idempotency)."""
        key = f"{self.dedup_key}/{self.event}:{self.reopen_count}"
        return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]

    @property
    def moved(self) -> str:
        return ", ".join(self.top_features) if self.top_features else "no single feature stands out"

    @property
    def title(self) -> str:
        what = {"resolve": "RESOLVED", "acknowledge": "ACKED"}.get(
            self.event, self.severity.upper()
        )
        if self.event == "test":
            what = "TEST"
        title = f"[{what}] drift in {self.model} {self.version} ({self.family}): {self.moved}"
        if self.estimated_drop_points is not None and self.event != "resolve":
            drop = self.estimated_drop_points
            title += f"; est. accuracy {_signed(-drop)} pts"
            if self.realized_drop_points is not None:
                title += f" (realized {_signed(-self.realized_drop_points)})"
        return title

    @property
    def statistic_line(self) -> str:
        # The threshold is an effect-size floor: say so, and give the test's own figures after.
        p = f", p={self.p_value:.2g}" if self.p_value is not None else ""
        return (
            f"{self.method}: effect size {self.effect_size:.3g} vs threshold "
            f"{self.threshold:.4g} (statistic {self.statistic:.4g}{p})"
        )

    @property
    def window_line(self) -> str:
        return f"window {self.window_start} → {self.window_end}"

    def text(self) -> str:
        """The plain-text body every channel can fall back on."""
        return "\n".join(
            [
                self.title,
                self.statistic_line,
                f"moved: {self.moved}",
                *(
                    [f"also drifting: {', '.join(self.also_drifting)}"]
                    if self.also_drifting
                    else []
                ),
                *([f"impact: {self.impact}"] if self.impact else []),
                self.window_line,
                *([f"worst images: {self.worst_images_url}"] if self.worst_images_url else []),
                f"dashboard: {self.dashboard_url}",
                f"runbook: {self.runbook} ({self.runbook_url})",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "title": self.title, "text": self.text()}


def _signed(points: float) -> str:
    return f"{'−' if points < 0 else '+'}{abs(points):.1f}"


def parse_time(value: str) -> datetime | None:
    """An ISO time from the evidence, or None when empty."""
    return datetime.fromisoformat(value) if value else None
