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

from monitor.alerts.message import runbook_anchor
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
            "runbook_url": runbook_anchor(settings.alerts.runbook_url, name.lower()),
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


def drift_rules(s: Settings) -> list[dict[str, Any]]:
    """Drift state, evaluation stalls and models that stopped logging."""
    r = s.alerts.rules
    return [
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
            f"{r.warning_for_minutes}m",
            "warning",
            "{{ $labels.model }} {{ $labels.version }}: {{ $labels.family }} drift warning",
            f"The {{{{ $labels.family }}}} family has been in warn for {r.warning_for_minutes} "
            "minutes.",
            s,
        ),
        _rule(
            "DriftwatchEvaluationStalled",
            "sum by (model, version) (increase(driftwatch_predictions_total[30m])) > 0 "
            "and on (model, version) (time() - max by (model, version) "
            "(driftwatch_last_window_end_timestamp_seconds) > 1800)",
            "15m",
            "warning",
            "{{ $labels.model }} {{ $labels.version }}: traffic but no windows evaluated",
            "Predictions arrive but no window was evaluated for 30 minutes: check the "
            "evaluator and its scheduler lock.",
            s,
        ),
        _rule(
            "DriftwatchModelStoppedLogging",
            f"max by (model) (driftwatch_model_last_log_age_seconds) > {r.stale_logs_minutes * 60}",
            "5m",
            "warning",
            "{{ $labels.model }} sent no prediction log for {{ $value | humanizeDuration }}",
            f"No log of the model arrived for over {r.stale_logs_minutes} minutes: check the "
            "model server's logger and its route to Kafka (or the HTTP ingest).",
            s,
        ),
    ]


def pipeline_rules(s: Settings) -> list[dict[str, Any]]:
    """Ingest lag, dead letters, alert delivery."""
    r = s.alerts.rules
    return [
        _rule(
            "DriftwatchConsumerLagHigh",
            f"sum by (topic) (driftwatch_ingest_consumer_lag) > {r.consumer_lag_messages}",
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


def canary_rules(s: Settings) -> list[dict[str, Any]]:
    """Rollbacks, and canary accuracy below stable by the rollout controller's tolerance."""
    drop = s.retrain.max_online_accuracy_drop
    return [
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
            f'(max by (model) (driftwatch_arm_accuracy{{arm="stable"}}) - {drop:g})',
            "10m",
            "warning",
            "{{ $labels.model }}: canary accuracy below stable",
            f"The canary arm's labelled accuracy is more than {drop * 100:g} points below "
            "stable: the rollout controller rolls it back at this tolerance.",
            s,
        ),
    ]


def alerting_rules(settings: Settings) -> dict[str, Any]:
    """The rules file as a dict (``groups`` of ``rules``), ready for YAML."""
    return {
        "groups": [
            {"name": "driftwatch-drift", "rules": drift_rules(settings)},
            {
                "name": "driftwatch-pipeline",
                "rules": [*pipeline_rules(settings), *ingest_liveness_rules(settings)],
            },
            {"name": "driftwatch-canary", "rules": canary_rules(settings)},
        ]
    }


def ingest_liveness_rules(settings: Settings) -> list[dict[str, Any]]:
    """Pages for an ingest that stopped: no poll for ``kafka.stale_poll_seconds``, or lag
    growing while nothing is stored. (A model that stopped logging is
    ``DriftwatchModelStoppedLogging``, among the pipeline rules.)"""
    stale = f"{settings.kafka.stale_poll_seconds:g}"
    lag, stored = "driftwatch_ingest_consumer_lag", "driftwatch_ingest_messages_total"
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
    ]


def write_rules(settings: Settings, path: Path) -> Path:
    """Write the rules file to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(alerting_rules(settings), sort_keys=False, width=100))
    return path
