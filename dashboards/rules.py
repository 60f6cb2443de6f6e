"""Prometheus alerting rules for teams that page through Alertmanager.

Every expression uses only metrics from :mod:`monitor.metrics_spec`; ``promtool check rules``
and ``promtool test rules`` run over the generated file in the tests.

>>> from monitor.settings import Settings
>>> [r["alert"] for r in alerting_rules(Settings())["groups"][0]["rules"]][:2]
['DriftwatchDriftAlert', 'DriftwatchDriftWarning']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.settings import Settings


def _rule(
    name: str,
    expr: str,
    duration: str,
    severity: str,
    summary: str,
    description: str,
    settings: Settings,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, "service": "driftwatch"},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": settings.alerts.runbook_url,
            "dashboard": settings.alerts.dashboard_url,
        },
    }


def _grew(selector: str, by: str, window: str) -> str:
    """Counter ``selector`` grew within ``window``, by ``by``. ``increase`` alone misses a
    labelled series whose first sample is already above zero (prometheus_client creates it on
    first use), so a series that is new within the window counts too."""
    return (
        f"sum by ({by}) (increase({selector}[{window}])) > 0 or "
        f"sum by ({by}) ({selector} unless {selector} offset {window}) > 0"
    )


def alerting_rules(settings: Settings) -> dict[str, Any]:
    """The rules file as a dict (``groups`` of ``rules``), ready for YAML."""
    s = settings
    drift = [
        _rule(
            "DriftwatchDriftAlert",
            "max by (model, version, family) (driftwatch_drift_state) >= 2",
            "0m",
            "critical",
            "{{ $labels.model }} {{ $labels.version }}: {{ $labels.family }} drift alert",
            "The policy put the {{ $labels.family }} family in alert: drift confirmed over "
            "consecutive windows.",
            s,
        ),
        _rule(
            "DriftwatchDriftWarning",
            "max by (model, version, family) (driftwatch_drift_state) == 1",
            "30m",
            "warning",
            "{{ $labels.model }} {{ $labels.version }}: {{ $labels.family }} drift warning",
            "The {{ $labels.family }} family has been in warn for 30 minutes.",
            s,
        ),
        _rule(
            "DriftwatchEvaluationStalled",
            "sum by (model, version) (increase(driftwatch_predictions_total[30m])) > 0 "
            "unless on (model, version) "
            "sum by (model, version) (increase(driftwatch_windows_evaluated_total[30m])) > 0",
            "15m",
            "warning",
            "{{ $labels.model }} {{ $labels.version }}: traffic but no windows evaluated",
            "Predictions arrive but no window was evaluated for 30 minutes: check the "
            "evaluator and its scheduler lock.",
            s,
        ),
    ]
    pipeline = [
        _rule(
            "DriftwatchConsumerLagHigh",
            "sum by (topic) (driftwatch_ingest_consumer_lag) > 100000",
            "10m",
            "warning",
            "Ingest lag on {{ $labels.topic }} is {{ $value }} messages",
            "Ingest workers fall behind: scale out the consumer group.",
            s,
        ),
        _rule(
            "DriftwatchDeadLetters",
            _grew("driftwatch_ingest_dead_letter_total", "topic, reason", "15m"),
            "0m",
            "warning",
            "Messages dead-lettered on {{ $labels.topic }} ({{ $labels.reason }})",
            "A producer sends invalid prediction logs; read the dead-letter topic.",
            s,
        ),
        _rule(
            "DriftwatchAlertDeliveryFailing",
            _grew('driftwatch_alert_deliveries_total{outcome="gave_up"}', "channel", "15m"),
            "0m",
            "critical",
            "Alert channel {{ $labels.channel }} gave up delivering",
            "Driftwatch could not deliver alerts after every retry.",
            s,
        ),
    ]
    canary = [
        _rule(
            "DriftwatchCanaryRolledBack",
            _grew('driftwatch_rollout_events_total{event="rolled_back"}', "model", "30m"),
            "0m",
            "warning",
            "{{ $labels.model }}: canary rolled back",
            "The rollout controller rolled the canary back; see the Canary dashboard.",
            s,
        ),
        _rule(
            "DriftwatchCanaryAccuracyRegression",
            'max by (model) (driftwatch_arm_accuracy{arm="canary"}) < on (model) '
            '(max by (model) (driftwatch_arm_accuracy{arm="stable"}) - 0.02)',
            "10m",
            "warning",
            "{{ $labels.model }}: canary accuracy below stable",
            "The canary arm's labelled accuracy is more than 2 points below stable.",
            s,
        ),
    ]
    return {
        "groups": [
            {"name": "driftwatch-drift", "rules": drift},
            {"name": "driftwatch-pipeline", "rules": [*pipeline, *ingest_liveness_rules(s)]},
            {"name": "driftwatch-canary", "rules": canary},
        ]
    }


def ingest_liveness_rules(settings: Settings, silent_minutes: int = 30) -> list[dict[str, Any]]:
    """Pages for an ingest that stopped: no poll for ``kafka.stale_poll_seconds``, lag growing
    while nothing is stored, a model that logged in the last day but not for
    ``silent_minutes``."""
    stale = f"{settings.kafka.stale_poll_seconds:g}"
    lag, stored = "driftwatch_ingest_consumer_lag", "driftwatch_ingest_messages_total"
    preds = "driftwatch_predictions_total"
    return [
        _rule(
            "DriftwatchIngestStalled",
            f"time() - driftwatch_ingest_last_poll_timestamp_seconds > {stale}",
            "2m",
            "critical",
            "Ingest worker {{ $labels.instance }} has not polled Kafka",
            f"No poll of the broker for more than {stale}s: the worker is stuck or dead "
            "(the process exits and restarts when it dies; check its logs).",
            settings,
        ),
        _rule(
            "DriftwatchIngestNoProgress",
            f"(sum by (topic) ({lag}) > 0 and sum by (topic) (delta({lag}[10m])) > 0) "
            f"unless on (topic) sum by (topic) (increase({stored}[10m])) > 0",
            "5m",
            "critical",
            "Ingest lag on {{ $labels.topic }} grows and nothing is stored",
            "The consumer lag grew for 10 minutes with no message consumed: the worker is "
            "paused on a failing store, stuck in a rebalance, or down.",
            settings,
        ),
        _rule(
            "DriftwatchModelSilent",
            f"sum by (model) (increase({preds}[1d])) > 0 unless on (model) "
            f"sum by (model) (increase({preds}[{silent_minutes}m])) > 0",
            "0m",
            "warning",
            "{{ $labels.model }} sent no prediction logs for " + f"{silent_minutes} minutes",
            "The model logged in the last day but not recently: its server or its Kafka "
            "producer stopped.",
            settings,
        ),
    ]


def write_rules(settings: Settings, path: Path) -> Path:
    """Write the rules file to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(alerting_rules(settings), sort_keys=False, width=100))
    return path
