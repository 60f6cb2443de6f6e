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
from typing import Any, Literal

from pydantic import model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from monitor.alerts.channels.alertmanager import AlertmanagerChannel
from monitor.alerts.channels.pagerduty import PagerDutyChannel
from monitor.alerts.channels.slack import SlackChannel
from monitor.alerts.channels.webhook import WebhookChannel
from monitor.errors import ConfigError
from monitor.settings.inputs import (
    DatabaseSettings,
    IngestSettings,
    KafkaSettings,
    RetentionSettings,
    WindowSettings,
)
from monitor.settings.judgment import (
    DetectorSettings,
    FamilySettings,
    ImpactSettings,
    PolicySettings,
)
from monitor.settings.outputs import (
    AlertRuleSettings,
    AlertSettings,
    ApiSettings,
    GrafanaSettings,
    MlflowSettings,
    RetrainSettings,
    SchedulerSettings,
)
from monitor.vocabulary import FAMILIES, Family

__all__ = [
    "FAMILIES",
    "AlertRuleSettings",
    "AlertSettings",
    "AlertmanagerChannel",
    "ApiSettings",
    "DatabaseSettings",
    "DetectorSettings",
    "Family",
    "FamilySettings",
    "GrafanaSettings",
    "ImpactSettings",
    "IngestSettings",
    "KafkaSettings",
    "MlflowSettings",
    "PagerDutyChannel",
    "PolicySettings",
    "RetentionSettings",
    "RetrainSettings",
    "SchedulerSettings",
    "Settings",
    "SlackChannel",
    "WebhookChannel",
    "WindowSettings",
    "load_settings",
]

_config_path: ContextVar[str | None] = ContextVar("driftwatch_config_path", default=None)


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
