"""The one settings object, built once at start-up and passed down.

Values come, highest priority first, from keyword arguments, environment variables with the
``DRIFTWATCH_`` prefix (nested with ``__``, e.g. ``DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS``), an
optional YAML file (``DRIFTWATCH_CONFIG`` or :func:`load_settings`'s ``path``) and the defaults
below, which are the embedded ones: a local broker and a SQLite file.

Every section is a frozen sub-model; nothing here is created at import time.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializeAsAny,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from monitor.alerts.channels.alertmanager import AlertmanagerChannel as AlertmanagerChannel
from monitor.alerts.channels.base import ChannelBase
from monitor.alerts.channels.pagerduty import PagerDutyChannel as PagerDutyChannel
from monitor.alerts.channels.registry import CHANNELS, parse_channel
from monitor.alerts.channels.slack import SlackChannel as SlackChannel
from monitor.alerts.channels.webhook import WebhookChannel as WebhookChannel
from monitor.errors import ConfigError
from monitor.vocabulary import FAMILIES as FAMILIES  # re-exported: settings name them too
from monitor.vocabulary import Family as Family

#: The YAML file given to :func:`load_settings`; falls back to ``DRIFTWATCH_CONFIG``.
_config_path: ContextVar[str | None] = ContextVar("driftwatch_config_path", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the broker is and how the consumer group reads it."""

    bootstrap_servers: Annotated[list[str], NoDecode] = ["127.0.0.1:9092"]
    predictions_topic: str = "driftwatch.predictions"
    labels_topic: str = "driftwatch.labels"
    dead_letter_topic: str = "driftwatch.dead-letter"
    group_id: str = "driftwatch-ingest"
    client_id: str = "driftwatch"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    max_poll_records: int = Field(5000, ge=1)
    fetch_max_bytes: int = Field(52_428_800, ge=1024)
    max_partition_fetch_bytes: int = Field(10_485_760, ge=1024)
    session_timeout_ms: int = Field(10_000, ge=1000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    request_timeout_ms: int = Field(30_000, ge=1000)
    ssl_cafile: Path | None = Field(None, description="PEM CA bundle (a private CA, Strimzi's).")
    ssl_certfile: Path | None = Field(None, description="PEM client certificate for mTLS.")
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ``ssl_certfile``.")
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Where a group with no committed offset starts: 'earliest' stores every "
        "retained log once (idempotent); 'latest' skips what was produced before it joined.",
    )
    offset_reset_policy: Literal["earliest", "fail"] = Field(
        "earliest",
        description="When a partition's log was reset under the group (broker restart): "
        "re-read from the earliest offset, or stop the worker.",
    )
    consumer_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra kafka-python KafkaConsumer keyword arguments."
    )
    producer_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra kafka-python KafkaProducer keyword arguments."
    )
    lag_refresh_seconds: float = Field(
        15.0, gt=0, description="How often the lag monitor reads end and committed offsets."
    )
    stale_poll_seconds: float = Field(
        120.0, gt=0, description="Ingest is stalled when its last poll is older than this."
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> KafkaSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("kafka.ssl_certfile and kafka.ssl_keyfile go together (mTLS)")
        tls_files = self.ssl_cafile or self.ssl_certfile
        if tls_files and not self.security_protocol.endswith("SSL"):
            raise ValueError("kafka.ssl_* files need security_protocol SSL or SASL_SSL")
        return self

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class DatabaseSettings(_Section):
    """The SQL store: a SQLite file when embedded, PostgreSQL in production."""

    url: str = "sqlite:///var/driftwatch.db"
    pool_size: int = Field(5, ge=1)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        # Accept the URLs people paste from Heroku/libpq and use the psycopg 3 driver.
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value


class IngestSettings(_Section):
    """Batching, limits and retries of the ingest worker."""

    batch_max_messages: int = Field(5000, ge=1)
    batch_max_seconds: float = Field(1.0, gt=0)
    retry_initial_seconds: float = Field(0.5, gt=0)
    retry_max_seconds: float = Field(30.0, gt=0)
    max_message_bytes: int = Field(262_144, ge=1024)
    max_thumbnail_bytes: int = Field(65_536, ge=256)
    max_embedding_dim: int = Field(4096, ge=1)
    max_classes: int = Field(10_000, ge=2)
    probability_tolerance: float = Field(1e-3, gt=0)
    max_future_skew_seconds: float = Field(300.0, ge=0)
    max_past_age_seconds: float = Field(
        31_622_400.0, gt=0, description="Older timestamps are refused (never before 1970)."
    )
    max_image_pixels: int = Field(4_000_000, ge=64, description="Largest decoded thumbnail.")
    max_attempts: int = Field(
        5, ge=1, description="Failed writes of one batch before it is isolated record by record."
    )
    store_thumbnails: bool = True
    embedding_dims: dict[str, int] = Field(
        default_factory=dict, description="Expected embedding dimension per model name."
    )
    allowed_models: list[str] = Field(
        default_factory=list, description="When non-empty, other models are dead-lettered."
    )


class RetentionSettings(_Section):
    """How long rows are kept; a scheduled job deletes older ones."""

    predictions_days: float = Field(30.0, gt=0)
    results_days: float = Field(365.0, gt=0)


class WindowSettings(_Section):
    """Tumbling windows per model and version, closed by count or time, whichever first."""

    max_count: int = Field(1000, ge=10)
    max_seconds: float = Field(300.0, gt=0)
    min_count: int = Field(50, ge=1, description="A time-closed window smaller than this waits.")
    reservoir_size: int = Field(2000, ge=100, description="Embeddings kept per window or profile.")


class FamilySettings(_Section):
    """Kind, significance level and effect-size floor of one detector family.

    ``None`` means "the default": the family's default kind, the kind's own effect floor (in
    the kind's unit, declared by its family module) and the family's share of
    :attr:`DetectorSettings.alpha`. A per-model override sets only the fields it names.
    """

    enabled: bool = True
    method: str | None = None
    alpha: float | None = Field(None, gt=0, lt=1)
    effect_floor: float | None = Field(None, ge=0)
    floor_min_rows: int = Field(
        2000, ge=0, description="Windows this large must reach the floor to alarm."
    )


class DetectorSettings(_Section):
    """One false-alarm budget and per-family settings, with per-model overrides
    (``overrides[model][family]``, merged field by field over the family's settings).

    Kinds, their default floors and units are declared by the family modules
    (``monitor.detectors``); ``monitor.detectors.registry.family_settings`` fills them in.
    """

    alpha: float = Field(
        0.05, gt=0, lt=1, description="Family-wise false-alarm rate of a window's verdict."
    )
    embedding: FamilySettings = FamilySettings()
    pixel: FamilySettings = FamilySettings()
    confidence: FamilySettings = FamilySettings()
    classes: FamilySettings = FamilySettings()
    overrides: dict[str, dict[Family, FamilySettings]] = Field(default_factory=dict)

    def for_model(self, model: str, family: str) -> FamilySettings:
        """The settings of ``family`` for ``model``: the override's fields over the family's.

        >>> s = DetectorSettings(pixel=FamilySettings(effect_floor=0.3),
        ...                      overrides={"m": {"pixel": FamilySettings(alpha=0.001)}})
        >>> s.for_model("m", "pixel").effect_floor, s.for_model("m", "pixel").alpha
        (0.3, 0.001)
        """
        base: FamilySettings = getattr(self, family, None) or FamilySettings()
        override = self.overrides.get(model, {}).get(family)  # type: ignore[call-overload]
        if override is None:
            return base
        return base.model_copy(update={f: getattr(override, f) for f in override.model_fields_set})


class ImpactSettings(_Section):
    """Whether drift hurts: the label-free accuracy estimate, and how severity and retraining
    use it (see ``docs/operations.md``, "Severity by impact"). Drops are in accuracy points."""

    enabled: bool = Field(True, description="Page only on drift that costs estimated accuracy.")
    level: float = Field(0.95, gt=0, lt=1, description="Confidence level of every interval.")
    page_min_drop_points: float = Field(
        3.0, ge=0, description="A page needs the drop's lower bound (or point) at least this."
    )
    critical_drop_points: float = Field(10.0, ge=0, description="Drop that makes it critical.")
    drop_bound: Literal["lower", "point"] = Field(
        "lower", description="Compare the interval's lower bound (cautious) or the point estimate."
    )
    min_realized_labels: int = Field(
        100, ge=1, description="Labelled logs in a window before its realized accuracy counts."
    )
    disagreement_points: float = Field(
        5.0, ge=0, description="Realized vs estimated gap that flags a failed estimate."
    )
    retrain_requires: Literal["none", "estimated", "realized", "either"] = Field(
        "either", description="Which drop a retrain needs (besides a paging alert)."
    )
    retrain_min_drop_points: float = Field(3.0, ge=0)
    min_calibration_labels: int = Field(
        50, ge=1, description="Labelled reference logs needed to fit temperature scaling."
    )
    worst_images: int = Field(24, ge=1, le=500, description="Worst images kept per window view.")
    worst_images_url: str = Field(
        "http://127.0.0.1:8000/api/v1/windows/{window_id}/outliers/page",
        description="Link to a window's worst-images grid in alerts ({window_id} is filled in).",
    )


class PolicySettings(_Section):
    """How drift results become decisions (see ``monitor/policy.py``)."""

    windows_to_warn: int = Field(1, ge=1)
    windows_to_alert: int = Field(2, ge=1)
    windows_to_resolve: int = Field(3, ge=1)
    cooldown_seconds: float = Field(3600.0, ge=0)
    alert_effect_multiple: float = Field(
        2.0, ge=1.0, description="Alert severity needs effect >= floor * this."
    )
    retrain_families: list[Family] = ["embedding", "pixel", "confidence", "classes"]
    retrain_max_per_day: int = Field(1, ge=0)
    retrain_min_severity: Literal["warning", "critical"] = "warning"
    impact: ImpactSettings = ImpactSettings()


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


class RetrainSettings(_Section):
    registry_dir: Path = Path("var/registry")
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


class Settings(BaseSettings):
    """Everything Driftwatch can be told. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTWATCH_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    environment: Literal["dev", "test", "prod"] = "dev"
    log_level: str = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    retention: RetentionSettings = RetentionSettings()
    windows: WindowSettings = WindowSettings()
    detectors: DetectorSettings = DetectorSettings()
    policy: PolicySettings = PolicySettings()
    alerts: AlertSettings = AlertSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    api: ApiSettings = ApiSettings()
    retrain: RetrainSettings = RetrainSettings()
    grafana: GrafanaSettings = GrafanaSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = _config_path.get() or os.environ.get("DRIFTWATCH_CONFIG")
        if config_path:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_path))
        return tuple(sources)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "prod":
            if self.database.url.startswith("sqlite"):
                raise ValueError("environment=prod needs a PostgreSQL database.url, not SQLite")
            if self.api.token is None or len(self.api.token.get_secret_value()) < 16:
                raise ValueError("environment=prod needs api.token of at least 16 characters")
        return self


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings from ``path`` (YAML), the environment and ``overrides``.

    Raises :class:`~monitor.errors.ConfigError` with every problem listed.
    """
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")
    token = _config_path.set(None if path is None else str(path))
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
    finally:
        _config_path.reset(token)
