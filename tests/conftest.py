"""Shared fixtures: a real broker, real PostgreSQL and SQLite databases, and log factories.

- ``broker``: one Tansu broker per test session; ``make_topics`` gives each test fresh topics.
- ``pg_server_url``: the PostgreSQL server (started if it is not running).
- ``db_url``: a fresh, migrated database per test, parametrised over SQLite and PostgreSQL
  (PostgreSQL ones are cloned from a migrated template, so they are cheap).
- ``make_log``: a factory of valid :class:`~monitor.schemas.PredictionLog`.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from ingest.broker import LocalBroker
from monitor.schemas import PredictionLog, encode_array
from monitor.settings import DatabaseSettings, KafkaSettings, Settings
from monitor.store import migrate
from monitor.store.db import make_engine, session_factory

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# ---------------------------------------------------------------- Kafka


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(log_path=log) as running:
        yield running


@pytest.fixture
def make_topics(broker: LocalBroker) -> Callable[..., KafkaSettings]:
    """Fresh predictions/labels/dead-letter topics and consumer group for one test."""

    def factory(partitions: int = 1) -> KafkaSettings:
        return broker.fresh_topics(partitions)

    return factory


# ---------------------------------------------------------------- databases


def _pg_reachable() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """Admin URL of the local PostgreSQL server, starting it if needed."""
    if not _pg_reachable() and shutil.which("pg_ctlcluster"):
        version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False
        )
    if not _pg_reachable():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started")
    return PG_ADMIN_URL


def _pg_admin(admin_url: str, *statements: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for stmt in statements:
            conn.execute(text(stmt))
    engine.dispose()


def pg_database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def pg_template(pg_server_url: str) -> Iterator[str]:
    """A migrated template database that per-test databases are cloned from."""
    name = f"dw_tmpl_{uuid.uuid4().hex[:8]}"
    _pg_admin(pg_server_url, f'CREATE DATABASE "{name}"')
    migrate.upgrade(pg_database_url(pg_server_url, name))
    yield name
    _pg_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"dw_test_{uuid.uuid4().hex[:10]}"
    _pg_admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield pg_database_url(pg_server_url, name)
    _pg_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite file for one test."""
    path = tmp_path / "driftwatch.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database on each backend in turn."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url = request.getfixturevalue(fixture)
    assert isinstance(url, str)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(DatabaseSettings(url=db_url))
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test: a database URL, optional Kafka settings, and any overrides."""

    def factory(db_url: str, kafka: KafkaSettings | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"environment": "test", "database": DatabaseSettings(url=db_url)}
        if kafka is not None:
            values["kafka"] = kafka
        values.update(overrides)
        return Settings(**values)

    return factory


# ---------------------------------------------------------------- logs

_counter = itertools.count()


@pytest.fixture
def make_log() -> Callable[..., PredictionLog]:
    """Build a valid PredictionLog; keyword arguments override any field."""
    rng = np.random.default_rng(0)

    def factory(**overrides: Any) -> PredictionLog:
        n_classes = int(overrides.pop("n_classes", 10))
        dim = int(overrides.pop("dim", 16))
        logits = rng.normal(size=n_classes)
        probs = np.exp(logits) / np.exp(logits).sum()
        values: dict[str, Any] = {
            "model": "digits",
            "model_version": "v1",
            "request_id": f"req-{next(_counter)}",
            "timestamp": datetime.now(UTC),
            "predicted_class": int(np.argmax(probs)),
            "probabilities": probs.tolist(),
            "embedding": encode_array(rng.normal(size=dim).astype(np.float32), "float32"),
            "pixel_stats": {"brightness": float(rng.uniform()), "contrast": float(rng.uniform())},
        }
        values.update(overrides)
        return PredictionLog.model_validate(values)

    return factory


# ---------------------------------------------------------------- waiting


def poll_until(
    condition: Callable[[], Any], timeout: float = 60.0, what: str = "", every: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(every)


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """The one polling helper: ``wait_until(lambda: ..., timeout=30, what="rows stored")``."""
    return poll_until
