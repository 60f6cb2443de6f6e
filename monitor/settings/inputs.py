"""Where logs come from and how they are kept: Kafka, the database, ingest, retention, windows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    NoDecode,
)

from monitor.settings.base import _Section


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

    heartbeat_file: Path | None = Field(
        None, description="Touched at every poll: a liveness probe checks its age (the chart)."
    )
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
