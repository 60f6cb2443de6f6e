"""What Driftwatch does about it: alerts, the scheduler, the API, retraining, Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    SerializeAsAny,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from monitor.alerts.channels.base import ChannelBase
from monitor.alerts.channels.registry import CHANNELS, parse_channel
from monitor.settings.base import _Section
from monitor.settings.targets import (
    KServeTargetSettings,
    KubernetesApiSettings,
    SeldonTargetSettings,
)


class AlertRuleSettings(_Section):
    """Thresholds of the Prometheus alerting rules (dashboards/rules.py)."""

    warning_for_minutes: int = Field(30, ge=1, description="A drift warning pages after this.")
    consumer_lag_messages: int = Field(100_000, ge=1)
    stale_logs_minutes: int = Field(30, ge=1, description="A model silent this long pages.")


class AlertSettings(_Section):
    """Where alerts go and how delivery is retried."""

    # Each item validates as the model its ``type`` names in the channel registry.
    channels: Annotated[
        list[SerializeAsAny[ChannelBase]],
        WithJsonSchema(
            {
                "type": "array",
                "items": {"oneOf": [m.model_json_schema() for m in CHANNELS.values()]},
            }
        ),
    ] = Field(default_factory=list)
    dashboard_url: str = "http://localhost:3000/d/driftwatch-oncall"
    runbook_url: str = "https://example.invalid/runbooks/driftwatch"
    max_attempts: int = Field(5, ge=1)
    backoff_initial_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0)
    rules: AlertRuleSettings = AlertRuleSettings()

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> list[ChannelBase]:
        channels = [parse_channel(item) for item in value or ()]
        names = [ch.name for ch in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique, got {names}")
        return channels


class SchedulerSettings(_Section):
    interval_seconds: float = Field(30.0, gt=0)
    retention_interval_seconds: float = Field(3600.0, gt=0)
    lock_id: int = Field(724_071, description="PostgreSQL advisory lock key of the evaluator.")
    retrain_interval_seconds: float = Field(
        60.0, gt=0, description="How often queued retrain jobs and running rollouts are handled."
    )
    run_retrain_jobs: bool = Field(
        True, description="Run queued retrain jobs in the evaluator (rollouts are judged anyway)."
    )


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token: SecretStr | None = Field(None, description="Bearer token for writes (and reads).")
    read_token: SecretStr | None = Field(None, description="Bearer token for reads only.")
    protect_reads: bool = False
    max_page_size: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Limit of a JSON body.")
    max_upload_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_expanded_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="Limit of an upload once decompressed."
    )


class MlflowSettings(_Section):
    """The MLflow tracking server the registry mirrors to (``registry_backend: mlflow``)."""

    tracking_uri: str | None = Field(None, description="http(s)://host:port of `mlflow server`.")
    token: SecretStr | None = Field(None, description="Sent as `Authorization: Bearer`.")
    experiment: str = Field("driftwatch", description="Experiment of the runs holding artifacts.")
    timeout_s: float = Field(10.0, gt=0, description="Per request; a slower server is retried.")


class RetrainSettings(_Section):
    registry_dir: Path = Path("var/registry")
    registry_backend: Literal["local", "mlflow"] = Field(
        "local", description="mlflow: mirror versions and aliases to retrain.mlflow's server."
    )
    mlflow: MlflowSettings = MlflowSettings()
    recipe: str = "retrain.recipes:digits_finetune"
    parity_tolerance: float = Field(1e-3, gt=0)
    max_int8_accuracy_drop: float = Field(0.01, ge=0)
    rollout_steps: list[int] = [5, 25, 50, 100]
    step_min_logs: int = Field(200, ge=1)
    min_recent_gain: float = Field(0.0, description="Candidate must beat current by this.")
    max_reference_drop: float = Field(0.02, ge=0)
    max_class_recall_drop: float = Field(0.10, ge=0)
    deployment_spec_path: Path = Path("var/deployment.json")
    deployment_webhook_url: str | None = None
    kubernetes: KubernetesApiSettings = KubernetesApiSettings()
    kserve: list[KServeTargetSettings] = Field(
        default_factory=list, description="InferenceServices the canary patches (needs [k8s])."
    )
    seldon: list[SeldonTargetSettings] = Field(
        default_factory=list, description="Seldon Core 2 Experiments the canary patches."
    )
    artifact_url: str | None = Field(
        None, description="s3://bucket/prefix the registry mirrors artifacts to; specs cite it."
    )
    s3_endpoint_url: str | None = Field(None, description="S3 API endpoint (MinIO, Ceph, ...).")
    seed: int = 0
    min_labelled: int = Field(100, ge=10, description="Labelled production images a job needs.")
    holdout_fraction: float = Field(0.3, gt=0, lt=1, description="Recent labels kept for the gate.")
    recipe_params: dict[str, Any] = Field(default_factory=dict)
    min_arm_labels: int = Field(50, ge=1, description="Labels per arm before accuracy counts.")
    max_online_accuracy_drop: float = Field(0.03, ge=0)
    max_latency_ratio: float = Field(
        2.0, ge=1.0, description="Canary / stable median latency limit."
    )
    max_estimated_accuracy_drop: float = Field(
        0.03, ge=0, description="Canary CBPE accuracy below stable's by more: roll back."
    )
    max_wait_seconds: float = Field(
        3600.0, gt=0, description="A canary verdict that waits longer becomes a rollback."
    )
    int8_min_speedup: float = Field(
        1.1, ge=1.0, description="INT8 ships only when this much faster than FP32."
    )
    serving_batch: int = Field(32, ge=1, description="Batch size the gate times formats at.")
    serving_threads: int = Field(1, ge=1, description="Intra-op threads of the target server.")

    @model_validator(mode="after")
    def _mlflow_needs_a_server(self) -> RetrainSettings:
        if self.registry_backend == "mlflow" and self.mlflow.tracking_uri is None:
            raise ValueError("retrain.registry_backend=mlflow needs retrain.mlflow.tracking_uri")
        return self


class GrafanaSettings(_Section):
    url: str = "http://localhost:3000"
    token: SecretStr | None = None
    folder_uid: str = "driftwatch"
    folder_title: str = "Driftwatch"
    prometheus_url: str = "http://prometheus:9090"
    postgres_host: str = "postgres:5432"
    postgres_database: str = "driftwatch"
    postgres_user: str = "driftwatch"
    postgres_password: SecretStr | None = None
