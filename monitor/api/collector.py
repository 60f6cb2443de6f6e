"""A Prometheus collector that reads the latest drift state from the database at scrape time.

Every API replica reads the same rows, so they all expose the same values, and a restarted
process shows the current state at once instead of empty gauges until the next evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.metrics_spec import BY_NAME
from monitor.policy import STATE_CODES
from monitor.settings import Settings
from monitor.store.alerting_tables import AlertRow, PolicyStateRow
from monitor.store.tables import DriftResultRow, Window


def _gauge(name: str) -> GaugeMetricFamily:
    spec = BY_NAME[name]
    return GaugeMetricFamily(name, spec.help, labels=list(spec.labels))


def _counter(name: str) -> CounterMetricFamily:
    spec = BY_NAME[name]
    return CounterMetricFamily(name.removesuffix("_total"), spec.help, labels=list(spec.labels))


class StoreCollector(Collector):
    """Drift, policy and alert gauges from the SQL store."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings,
                 max_features: int = 5) -> None:
        self.factory, self.settings, self.max_features = factory, settings, max_features

    def collect(self) -> Iterator[Any]:
        with self.factory() as session:
            yield from self._drift(session)
            yield from self._policy(session)
            yield from self._windows(session)

    def _drift(self, session: Session) -> Iterator[Any]:
        latest = (
            select(DriftResultRow.model, DriftResultRow.model_version, DriftResultRow.arm,
                   DriftResultRow.family, func.max(DriftResultRow.id).label("id"))
            .group_by(DriftResultRow.model, DriftResultRow.model_version, DriftResultRow.arm,
                      DriftResultRow.family).subquery()
        )
        rows = session.scalars(
            select(DriftResultRow).join(latest, DriftResultRow.id == latest.c.id))
        stat, effect = _gauge("driftwatch_drift_statistic"), _gauge("driftwatch_drift_effect_size")
        p_value, detected = _gauge("driftwatch_drift_p_value"), _gauge("driftwatch_drift_detected")
        threshold, feature = _gauge("driftwatch_drift_threshold"), _gauge(
            "driftwatch_feature_change")
        seen: set[tuple[str, str, str]] = set()
        multiple = self.settings.policy.alert_effect_multiple
        for r in rows:
            mv = [r.model, r.model_version]
            stat.add_metric([*mv, r.arm, r.family, r.kind], r.statistic)
            effect.add_metric([*mv, r.arm, r.family], r.effect_size)
            detected.add_metric([*mv, r.arm, r.family], float(r.drifted))
            if r.p_value is not None:
                p_value.add_metric([*mv, r.arm, r.family], r.p_value)
            if (r.model, r.model_version, r.family) in seen:
                continue
            seen.add((r.model, r.model_version, r.family))
            floor = self.settings.detectors.for_model(r.model, r.family).effect_floor  # type: ignore[arg-type]
            threshold.add_metric([*mv, r.family, "warn"], floor)
            threshold.add_metric([*mv, r.family, "alert"], floor * multiple)
            moved = sorted(r.details or [], key=lambda f: (not f.get("drifted"),
                                                            -abs(f.get("effect_size", 0.0))))
            for f in moved[: self.max_features]:
                ref, cur = float(f.get("ref_value", 0.0)), float(f.get("cur_value", 0.0))
                change = (cur / ref - 1.0) if f.get("relative", True) and ref else cur - ref
                feature.add_metric([*mv, r.family, str(f.get("name"))], change)
        yield from (stat, effect, p_value, detected, threshold, feature)

    def _policy(self, session: Session) -> Iterator[Any]:
        state = _gauge("driftwatch_drift_state")
        for row in session.scalars(select(PolicyStateRow)):
            state.add_metric([row.model, row.model_version, row.family],
                             float(STATE_CODES.get(row.state, 0)))
        active = _gauge("driftwatch_alerts_active")
        for model, family, severity, n in session.execute(
            select(AlertRow.model, AlertRow.family, AlertRow.severity, func.count())
            .where(AlertRow.status == "firing")
            .group_by(AlertRow.model, AlertRow.family, AlertRow.severity)
        ):
            active.add_metric([model, family, severity], float(n))
        yield from (state, active)

    def _windows(self, session: Session) -> Iterator[Any]:
        last_end = _gauge("driftwatch_last_window_end_timestamp_seconds")
        evaluated = _counter("driftwatch_windows_evaluated_total")
        for model, version, arm, end, n in session.execute(
            select(Window.model, Window.model_version, Window.arm, func.max(Window.end_ts),
                   func.count())
            .where(and_(Window.evaluated_at.is_not(None), Window.state == "evaluated"))
            .group_by(Window.model, Window.model_version, Window.arm)
        ):
            if end is not None:
                ts = end.timestamp() if hasattr(end, "timestamp") else 0.0
                last_end.add_metric([model, version, arm], ts)
            evaluated.add_metric([model, version, arm], float(n))
        yield from (last_end, evaluated)
