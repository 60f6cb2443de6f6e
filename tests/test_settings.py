"""Settings: defaults are embedded, env and YAML override, production refuses unsafe values."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import Settings, load_settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTWATCH_CONFIG", raising=False)
    settings = load_settings()
    assert settings.database.url.startswith("sqlite:///")
    assert settings.kafka.bootstrap_servers == ["127.0.0.1:9092"]


def test_env_overrides_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("DRIFTWATCH_DATABASE__URL", "postgres://u@db/dw")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert settings.database.url == "postgresql+psycopg://u@db/dw"


def test_yaml_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "dw.yaml"
    config.write_text("windows:\n  max_count: 500\napi:\n  port: 9001\n")
    monkeypatch.setenv("DRIFTWATCH_API__PORT", "9002")
    settings = load_settings(config)
    assert settings.windows.max_count == 500
    assert settings.api.port == 9002
    # The file applies to that call only: nothing leaks into later settings.
    assert load_settings().windows.max_count != 500


def test_unknown_keys_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    config = tmp_path / "dw.yaml"
    config.write_text("windows:\n  max_cuont: 500\n")
    with pytest.raises(ConfigError, match="max_cuont"):
        load_settings(config)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yaml")


def test_production_refuses_sqlite_and_weak_token() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        Settings(environment="prod")
    with pytest.raises(ValueError, match=r"api\.token"):
        Settings(environment="prod", database={"url": "postgresql://db/dw"}, api={"token": "short"})
    ok = Settings(
        environment="prod", database={"url": "postgresql://db/dw"}, api={"token": "x" * 32}
    )
    assert ok.api.token is not None
