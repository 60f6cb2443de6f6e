"""The Prometheus metrics Driftwatch exposes: one table that the exporters, the dashboards and
the alerting rules all read, so a renamed metric breaks a test instead of a panel.

Label values: ``family`` is one of embedding/pixel/confidence/classes; ``arm`` is stable/canary/all;
``state`` of a drift state gauge is 0 ok, 1 warn, 2 alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: Literal["gauge", "counter", "histogram"]
    labels: tuple[str, ...]
    help: str


_MV = ("model", "version")

METRICS: tuple[MetricSpec, ...] = (
    # drift (evaluator)
    MetricSpec(
        "driftwatch_drift_statistic",
        "gauge",
        (*_MV, "arm", "family", "kind"),
        "Latest test statistic per model, version, arm and family.",
    ),
    MetricSpec(
        "driftwatch_drift_effect_size",
        "gauge",
        (*_MV, "arm", "family"),
        "Latest effect size (compared with the family's floor).",
    ),
    MetricSpec(
        "driftwatch_drift_p_value",
        "gauge",
        (*_MV, "arm", "family"),
        "Latest p-value, where the method has one.",
    ),
    MetricSpec(
        "driftwatch_drift_threshold",
        "gauge",
        (*_MV, "family", "level"),
        "Effect-size threshold of the family at level warn or alert.",
    ),
    MetricSpec(
        "driftwatch_drift_detected",
        "gauge",
        (*_MV, "arm", "family"),
        "1 when the latest window drifted for the family, else 0.",
    ),
    MetricSpec(
        "driftwatch_drift_state", "gauge", (*_MV, "family"), "Policy state: 0 ok, 1 warn, 2 alert."
    ),
    MetricSpec(
        "driftwatch_feature_change",
        "gauge",
        (*_MV, "family", "feature"),
        "Relative change of a moved feature in the latest window (e.g. -0.18).",
    ),
    MetricSpec(
        "driftwatch_windows_evaluated_total", "counter", (*_MV, "arm"), "Windows evaluated."
    ),
    MetricSpec(
        "driftwatch_evaluation_seconds",
        "histogram",
        (),
        "Time to evaluate one window across all families.",
    ),
    MetricSpec(
        "driftwatch_last_window_end_timestamp_seconds",
        "gauge",
        (*_MV, "arm"),
        "End time of the latest evaluated window.",
    ),
    # alerts
    MetricSpec(
        "driftwatch_alerts_total", "counter", ("model", "family", "severity"), "Alerts opened."
    ),
    MetricSpec(
        "driftwatch_alerts_active",
        "gauge",
        ("model", "family", "severity"),
        "Alerts currently firing.",
    ),
    MetricSpec(
        "driftwatch_alert_deliveries_total",
        "counter",
        ("channel", "outcome"),
        "Alert deliveries by outcome (delivered, failed, gave_up, silenced, resent, resend_failed).",
    ),
    MetricSpec(
        "driftwatch_build_info",
        "gauge",
        ("version", "python"),
        "Always 1; the labels say which Driftwatch build answers.",
    ),
    MetricSpec(
        "driftwatch_model_last_log_age_seconds",
        "gauge",
        ("model",),
        "Seconds since the model's latest stored prediction log (a model that stopped logging).",
    ),
    # ingest
    MetricSpec(
        "driftwatch_ingest_messages_total",
        "counter",
        ("topic", "outcome"),
        "Messages consumed by outcome (stored, duplicate, dead_letter).",
    ),
    MetricSpec(
        "driftwatch_ingest_dead_letter_total",
        "counter",
        ("topic", "reason"),
        "Messages sent to the dead-letter topic by reason.",
    ),
    MetricSpec(
        "driftwatch_ingest_consumer_lag",
        "gauge",
        ("topic", "partition"),
        "Messages behind the end of each partition (high watermark minus committed offset).",
    ),
    MetricSpec(
        "driftwatch_ingest_last_poll_timestamp_seconds",
        "gauge",
        (),
        "Unix time of the ingest worker's last poll of the broker (its heartbeat).",
    ),
    MetricSpec(
        "driftwatch_ingest_offset_resets_total",
        "counter",
        ("topic", "partition", "policy"),
        "Partitions whose log was found reset under the group (broker restart), by policy.",
    ),
    MetricSpec(
        "driftwatch_ingest_batch_seconds",
        "histogram",
        (),
        "Time to validate and durably write one batch.",
    ),
    MetricSpec(
        "driftwatch_ingest_store_retries_total",
        "counter",
        (),
        "Batch writes retried because the database failed.",
    ),
    MetricSpec("driftwatch_predictions_total", "counter", (*_MV, "arm"), "Prediction logs stored."),
    # canary arms (evaluator, from windows of each arm)
    MetricSpec(
        "driftwatch_arm_accuracy",
        "gauge",
        (*_MV, "arm"),
        "Labelled accuracy of the arm's latest window.",
    ),
    MetricSpec(
        "driftwatch_arm_latency_seconds",
        "gauge",
        (*_MV, "arm", "percentile"),
        "Latency percentiles (50, 99) of the arm's latest window.",
    ),
    MetricSpec(
        "driftwatch_arm_low_confidence_ratio",
        "gauge",
        (*_MV, "arm"),
        "Ratio (0..1) of predictions below the low-confidence cut in the latest window.",
    ),
    MetricSpec(
        "driftwatch_arm_confidence_ratio",
        "gauge",
        (*_MV, "arm", "upper"),
        "Ratio (0..1) of the latest window with max softmax <= upper (cumulative).",
    ),
    MetricSpec(
        "driftwatch_arm_class_ratio",
        "gauge",
        (*_MV, "arm", "class"),
        "Ratio (0..1) of predictions of the top classes of the latest window; the rest: other.",
    ),
    MetricSpec(
        "driftwatch_canary_agreement",
        "gauge",
        ("model",),
        "Agreement of canary and stable models on the offline gate set.",
    ),
    MetricSpec(
        "driftwatch_canary_weight",
        "gauge",
        ("model", "version"),
        "Deprecated (set in the retraining process): use driftwatch_canary_traffic_ratio.",
    ),
    MetricSpec(
        "driftwatch_canary_traffic_ratio",
        "gauge",
        ("model", "version"),
        "Ratio (0..1) of traffic routed to the canary version of a running rollout.",
    ),
    MetricSpec(
        "driftwatch_canary_step",
        "gauge",
        ("model", "version"),
        "Index of the current rollout step.",
    ),
    MetricSpec(
        "driftwatch_canary_verdict",
        "gauge",
        ("model", "stable", "canary"),
        "Latest canary verdict of two arms: 1 advance, 0 wait, -1 rollback.",
    ),
    MetricSpec(
        "driftwatch_rollout_events_total",
        "counter",
        ("model", "event"),
        "Rollout events (started, step, promoted, rolled_back).",
    ),
    MetricSpec(
        "driftwatch_registry_mirror_failures_total",
        "counter",
        ("model", "outcome"),
        "Registry events the MLflow mirror failed to deliver (outcome retried/dead_lettered).",
    ),
    MetricSpec(
        "driftwatch_registry_mirror_pending",
        "gauge",
        ("model",),
        "Registry events not yet mirrored to MLflow (a backlog that grows: MLflow unreachable).",
    ),
    # retraining and models
    MetricSpec(
        "driftwatch_retrain_jobs_total",
        "counter",
        ("model", "state"),
        "Retraining jobs reaching a state.",
    ),
    MetricSpec(
        "driftwatch_model_accuracy",
        "gauge",
        (*_MV, "format", "dataset"),
        "Offline accuracy of a registered model version (format fp32/int8).",
    ),
    MetricSpec(
        "driftwatch_model_size_bytes",
        "gauge",
        (*_MV, "format"),
        "Artifact size of a registered model version.",
    ),
    MetricSpec(
        "driftwatch_model_latency_seconds",
        "gauge",
        (*_MV, "format", "batch"),
        "p50 latency of a registered model version at batch 1 and 32.",
    ),
)

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}
