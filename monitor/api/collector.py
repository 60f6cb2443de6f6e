"""A Prometheus collector that reads the latest drift state from the database at scrape time.

Every API replica reads the same rows, so they all expose the same values, and a restarted
process shows the current state at once instead of empty gauges until the next evaluation.

The canary-arm gauges (``driftwatch_arm_*``) summarise the latest window the evaluator has
processed (evaluated, or found without a reference profile, as a new canary version often is) of
each model, version and arm. A scrape reads only four small columns of at most ``max_arm_windows``
windows (no probability or embedding bytes), so its cost is bounded by the window size.

Cardinality is bounded: only versions with a window (or a drift result) in the last
``active_seconds`` are exported, class ratios name the ``top_classes`` largest classes and fold
the rest into ``class="other"``, and model figures cover registered versions that are not retired.
Model, rollout and staleness gauges come from the store too, so they survive restarts and show
what a ``driftwatch retrain`` run elsewhere did. Counts of rows (which retention shrinks) are
never exported as counters; the evaluator's own counters count events.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from monitor.detectors.confidence import LOW_CONFIDENCE
from monitor.detectors.registry import effect_floor
from monitor.metrics_spec import BY_NAME
from monitor.policy.rules import STATE_CODES
from monitor.settings import Settings
from monitor.store import gauge_queries
from monitor.store.alerts_repo import firing_counts
from monitor.store.policy_repo import all_states
from monitor.store.rollouts_repo import latest_rollout_per_model

#: Upper edges of the ``driftwatch_arm_confidence_ratio`` gauge (``upper`` label, one decimal).
CONFIDENCE_LE: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))
#: Quantiles of ``driftwatch_arm_latency_seconds`` (``percentile`` label 50, 99).
LATENCY_QUANTILES: tuple[float, ...] = (0.5, 0.99)
#: Registry states whose versions still serve or may serve.
LIVE_STATES = ("candidate", "canary", "promoted")
#: The names this collector answers for (the API leaves its process's copies of them out).
STORE_METRICS: frozenset[str] = frozenset(
    {
        "driftwatch_drift_statistic",
        "driftwatch_drift_effect_size",
        "driftwatch_drift_p_value",
        "driftwatch_drift_detected",
        "driftwatch_drift_threshold",
        "driftwatch_feature_change",
        "driftwatch_drift_state",
        "driftwatch_alerts_active",
        "driftwatch_last_window_end_timestamp_seconds",
        "driftwatch_arm_accuracy",
        "driftwatch_arm_latency_seconds",
        "driftwatch_arm_low_confidence_ratio",
        "driftwatch_arm_confidence_ratio",
        "driftwatch_arm_class_ratio",
        "driftwatch_canary_traffic_ratio",
        "driftwatch_canary_step",
        "driftwatch_canary_weight",
        "driftwatch_model_accuracy",
        "driftwatch_model_size_bytes",
        "driftwatch_model_latency_seconds",
        "driftwatch_model_last_log_age_seconds",
        "driftwatch_build_info",
    }
)


def _gauge(name: str) -> GaugeMetricFamily:
    spec = BY_NAME[name]
    return GaugeMetricFamily(name, spec.help, labels=list(spec.labels))


def top_classes(shares: Sequence[float], k: int) -> list[tuple[str, float]]:
    """The ``k`` largest class shares by class id, and the rest summed as ``other``.

    >>> top_classes([0.1, 0.5, 0.05, 0.35], 2)
    [('1', 0.5), ('3', 0.35), ('other', 0.15000000000000002)]
    >>> top_classes([0.4, 0.6], 5)
    [('1', 0.6), ('0', 0.4)]
    """
    order = sorted(range(len(shares)), key=lambda i: (-shares[i], i))
    top = [(str(i), float(shares[i])) for i in order[:k]]
    rest = [shares[i] for i in order[k:]]
    return [*top, ("other", float(sum(rest)))] if rest else top


def build_version() -> str:
    try:
        return dist_version("driftwatch")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


@dataclass(frozen=True)
class ArmFigures:
    """What the arm gauges show for one window."""

    accuracy: float | None
    latency_s: dict[float, float]
    low_confidence_rate: float
    confidence_le: dict[float, float]
    class_share: list[float]


def arm_figures(
    predicted: Sequence[int],
    confidence: Sequence[float],
    latency_ms: Sequence[float | None],
    labels: Sequence[int | None],
    n_classes: int,
    low_cut: float,
) -> ArmFigures:
    """Accuracy on the labelled logs, latency quantiles, low-confidence rate (``< low_cut``),
    cumulative confidence shares (``<= le``) and class shares of one window's logs.

    >>> f = arm_figures([0, 1, 1, 2], [0.9, 0.4, 0.6, 0.95], [10.0, 20.0, None, 30.0],
    ...                 [0, 0, None, 2], 3, 0.5)
    >>> f.accuracy, f.latency_s[0.5], f.low_confidence_rate, f.confidence_le[0.5], f.class_share
    (0.6666666666666666, 0.02, 0.25, 0.25, [0.25, 0.5, 0.25])
    """
    pred = np.asarray(predicted, dtype=np.int64)
    conf = np.asarray(confidence, dtype=np.float64)
    lat = np.array([np.nan if v is None else v for v in latency_ms], dtype=np.float64)
    lab = np.array([-1 if v is None else v for v in labels], dtype=np.int64)
    known = lab >= 0
    lat = lat[np.isfinite(lat)]
    return ArmFigures(
        accuracy=float((lab[known] == pred[known]).mean()) if known.any() else None,
        latency_s={q: float(np.quantile(lat, q)) / 1000 for q in LATENCY_QUANTILES}
        if lat.size
        else {},
        low_confidence_rate=float((conf < low_cut).mean()),
        confidence_le={le: float((conf <= le).mean()) for le in CONFIDENCE_LE},
        class_share=(np.bincount(pred, minlength=n_classes) / len(pred)).tolist(),
    )


class StoreCollector(Collector):
    """Drift, policy, alert and canary-arm gauges from the SQL store."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        max_features: int = 5,
        max_arm_windows: int = 32,
        top_classes: int = 10,
        active_seconds: float = 7 * 86400,
    ) -> None:
        self.factory, self.settings, self.max_features = factory, settings, max_features
        self.max_arm_windows, self.top_classes = max_arm_windows, top_classes
        self.active = timedelta(seconds=active_seconds)

    def collect(self) -> Iterator[Any]:
        info = _gauge("driftwatch_build_info")
        info.add_metric([build_version(), platform.python_version()], 1.0)
        yield info
        now = datetime.now(UTC)
        with self.factory() as session:
            yield from self._drift(session, now - self.active)
            yield from self._policy(session)
            yield from self._windows(session, now - self.active)
            yield from self._arms(session, now - self.active)
            yield from self._models(session)
            yield from self._staleness(session, now)

    def _drift(self, session: Session, since: datetime) -> Iterator[Any]:
        rows = gauge_queries.latest_results(session, since)
        stat, effect = _gauge("driftwatch_drift_statistic"), _gauge("driftwatch_drift_effect_size")
        p_value, detected = _gauge("driftwatch_drift_p_value"), _gauge("driftwatch_drift_detected")
        threshold, feature = (
            _gauge("driftwatch_drift_threshold"),
            _gauge("driftwatch_feature_change"),
        )
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
            floor = effect_floor(self.settings.detectors, r.model, r.family)
            threshold.add_metric([*mv, r.family, "warn"], floor)
            threshold.add_metric([*mv, r.family, "alert"], floor * multiple)
            moved = sorted(
                r.details or [],
                key=lambda f: (not f.get("drifted"), -abs(f.get("effect_size", 0.0))),
            )
            for f in moved[: self.max_features]:
                ref, cur = float(f.get("ref_value", 0.0)), float(f.get("cur_value", 0.0))
                change = (cur / ref - 1.0) if f.get("relative", True) and ref else cur - ref
                feature.add_metric([*mv, r.family, str(f.get("name"))], change)
        yield from (stat, effect, p_value, detected, threshold, feature)

    def _policy(self, session: Session) -> Iterator[Any]:
        state = _gauge("driftwatch_drift_state")
        for row in all_states(session):
            state.add_metric(
                [row.model, row.model_version, row.family], float(STATE_CODES.get(row.state, 0))
            )
        active = _gauge("driftwatch_alerts_active")
        for model, family, severity, n in firing_counts(session):
            active.add_metric([model, family, severity], float(n))
        yield from (state, active)

    def _windows(self, session: Session, since: datetime) -> Iterator[Any]:
        last_end = _gauge("driftwatch_last_window_end_timestamp_seconds")
        for model, version, arm, end in gauge_queries.last_evaluated_ends(session, since):
            if end is not None:
                last_end.add_metric([model, version, arm], end.timestamp())
        yield last_end

    def _models(self, session: Session) -> Iterator[Any]:
        ratio, step = _gauge("driftwatch_canary_traffic_ratio"), _gauge("driftwatch_canary_step")
        for r in latest_rollout_per_model(session):
            running = r.plan[r.step_index] / 100 if r.step_index < len(r.plan) else 0.0
            share = {"running": running, "promoted": 1.0}.get(r.state, 0.0)
            ratio.add_metric([r.model, r.candidate_version], share)
            step.add_metric([r.model, r.candidate_version], float(r.step_index))
        acc, size = _gauge("driftwatch_model_accuracy"), _gauge("driftwatch_model_size_bytes")
        latency = _gauge("driftwatch_model_latency_seconds")
        for mv in gauge_queries.versions_in(session, LIVE_STATES):
            key, m = [mv.model, mv.version], mv.metrics or {}
            for fmt, value in (m.get("accuracy") or {}).items():
                if fmt in ("fp32", "int8"):
                    acc.add_metric([*key, fmt, "recent_holdout"], float(value))
            for fmt, value in (m.get("size_bytes") or {}).items():
                size.add_metric([*key, fmt], float(value))
            for name, lat in (m.get("latency") or {}).items():
                fmt, _, batch = name.partition("_b")
                latency.add_metric([*key, fmt, batch], float(lat["p50_ms"]) / 1000)
        yield from (ratio, step, acc, size, latency)

    def _staleness(self, session: Session, now: datetime) -> Iterator[Any]:
        age = _gauge("driftwatch_model_last_log_age_seconds")
        for model, last in gauge_queries.last_log_times(session):
            if last is not None:
                age.add_metric([model], max(0.0, (now - last).total_seconds()))
        yield age

    def _arms(self, session: Session, since: datetime) -> Iterator[Any]:
        # a canary version often has no reference yet: its windows still have arm figures
        windows = gauge_queries.latest_done_windows(session, since, self.max_arm_windows)
        accuracy, latency = (
            _gauge("driftwatch_arm_accuracy"),
            _gauge("driftwatch_arm_latency_seconds"),
        )
        low, bucket = (
            _gauge("driftwatch_arm_low_confidence_ratio"),
            _gauge("driftwatch_arm_confidence_ratio"),
        )
        share = _gauge("driftwatch_arm_class_ratio")
        for w in windows:
            rows = gauge_queries.arm_log_figures(session, w)
            if not rows:  # retention removed the window's logs
                continue
            pred, conf, lat, labels, n_classes = zip(*rows, strict=True)
            f = arm_figures(pred, conf, lat, labels, max(n_classes), LOW_CONFIDENCE)
            key = [w.model, w.model_version, w.arm]
            if f.accuracy is not None:
                accuracy.add_metric(key, f.accuracy)
            for q, seconds in f.latency_s.items():
                latency.add_metric([*key, f"{q * 100:g}"], seconds)
            low.add_metric(key, f.low_confidence_rate)
            for le, value in f.confidence_le.items():
                bucket.add_metric([*key, f"{le:.1f}"], value)
            for cls, value in top_classes(f.class_share, self.top_classes):
                share.add_metric([*key, cls], value)
        yield from (accuracy, latency, low, bucket, share)
