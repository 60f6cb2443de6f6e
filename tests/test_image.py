"""What the container image does, without a Docker daemon: the Dockerfile's install and entry
commands run in a fresh virtual environment outside the checkout, from the wheel built here.

The wheel gets the base install plus the ``s3`` extra (the image's default ``EXTRAS``); then
``driftwatch db upgrade`` migrates a new PostgreSQL database, ``driftwatch serve`` answers
``/readyz`` and the image's HEALTHCHECK command, and ``driftwatch ingest`` stores a few logs from
the real broker. Nothing is imported from the checkout: the child processes run with no
``PYTHONPATH`` in a directory outside it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from monitor.schemas import PredictionLog
from monitor.settings import KafkaSettings
from tests.conftest import _pg_admin, pg_database_url

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)


def instruction(name: str) -> list[str]:
    """Every ``NAME`` instruction of the Dockerfile (continuation lines joined)."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.M)]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's runtime stage: the built wheel and its ``EXTRAS`` in a fresh venv."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
        cwd=out,
    )
    (wheel,) = out.glob("driftwatch-*.whl")
    env_dir = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    (extras,) = re.findall(r"^ARG EXTRAS=(\S+)$", DOCKERFILE, re.M)
    pip = [str(env_dir / "bin" / "pip"), "install", "-q", f"{wheel}[{extras}]"]
    subprocess.run(pip, check=True, cwd=out, env=clean_env())
    return env_dir


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTWATCH_", "PYTHON"))}
    return {**env, **extra}


def run(venv: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def empty_pg(pg_server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (not the migrated template)."""
    name = f"dw_image_{uuid.uuid4().hex[:8]}"
    _pg_admin(pg_server_url, f'CREATE DATABASE "{name}"')
    yield pg_database_url(pg_server_url, name)
    _pg_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_dockerfile_runs_tini_as_pid_1_as_a_non_root_user_with_a_health_check() -> None:
    assert instruction("ENTRYPOINT") == ['["/usr/bin/tini", "--"]']
    (user,) = instruction("USER")
    assert not user.startswith(("root", "0"))
    assert len(instruction("HEALTHCHECK")) == 1
    stages = instruction("FROM")
    assert len(stages) == 2 and all("-slim" in s for s in stages)
    # the ml extra is opt-in and brings the one pinned torch first
    assert 'pip install "torch==${TORCH_VERSION}"' in DOCKERFILE
    assert instruction("ARG").count("TORCH_VERSION=2.13.0") == 1


def test_the_wheel_runs_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.metadata as m, monitor, pyarrow, boto3; "
        "print(monitor.__file__); print(m.version('driftwatch'))"
    )
    result = run(venv, "python", "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    location, version = result.stdout.split()
    assert Path(location).is_relative_to(venv) and not Path(location).is_relative_to(ROOT)
    assert VERSION is not None and version == VERSION.group(1)
    migrations = Path(location).parent / "store" / "migrations" / "versions"
    assert sorted(p.name for p in migrations.glob("0*.py")) == sorted(
        p.name for p in (ROOT / "monitor/store/migrations/versions").glob("0*.py")
    )


@pytest.mark.slow  # the venv install dominates: minutes on a loaded 2-core machine
def test_entry_commands_migrate_serve_and_ingest(
    venv: Path,
    tmp_path: Path,
    empty_pg: str,
    make_topics: Callable[..., KafkaSettings],
    make_log: Callable[..., PredictionLog],
    wait_until: Callable[..., Any],
) -> None:
    kafka = make_topics()
    port = free_port()
    env = {
        "DRIFTWATCH_ENVIRONMENT": "test",
        "DRIFTWATCH_DATABASE__URL": empty_pg,
        "DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS": ",".join(kafka.bootstrap_servers),
        "DRIFTWATCH_KAFKA__PREDICTIONS_TOPIC": kafka.predictions_topic,
        "DRIFTWATCH_KAFKA__LABELS_TOPIC": kafka.labels_topic,
        "DRIFTWATCH_KAFKA__DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "DRIFTWATCH_KAFKA__GROUP_ID": kafka.group_id,
        "DRIFTWATCH_API__HOST": "127.0.0.1",
        "DRIFTWATCH_API__PORT": str(port),
        "DRIFTWATCH_RETRAIN__REGISTRY_DIR": str(tmp_path / "registry"),
    }

    # the migration Job
    migrated = run(venv, "driftwatch", "db", "upgrade", cwd=tmp_path, **env)
    assert migrated.returncode == 0, migrated.stderr
    engine = sa.create_engine(empty_pg)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar() == 0

    # the image's default command, probed as the chart and the HEALTHCHECK probe it
    serve = subprocess.Popen(
        [str(venv / "bin" / "driftwatch"), "serve"],
        cwd=tmp_path,
        env=clean_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def ready() -> dict[str, Any] | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    return json.loads(r.read()) if r.status == 200 else None
            except OSError:
                assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
                return None

        assert wait_until(ready, timeout=60, what="/readyz answers 200")
        (health,) = instruction("HEALTHCHECK")
        probe = json.loads(health.split("CMD", 1)[1])
        assert probe[0] == "python"
        checked = run(venv, *probe, cwd=tmp_path, **env)
        assert checked.returncode == 0, checked.stderr
    finally:
        serve.terminate()
        serve.wait(timeout=30)

    # an ingest worker, as the ingest Deployment runs it
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for i in range(5):
        log = make_log(request_id=f"image-{i}")
        producer.send(kafka.predictions_topic, log.model_dump_json().encode())
    producer.send(kafka.predictions_topic, b"not json")
    producer.flush()
    producer.close()
    ingested = run(
        venv,
        "driftwatch",
        "ingest",
        "--max-messages",
        "6",
        "--idle-timeout",
        "30",
        cwd=tmp_path,
        **env,
    )
    assert ingested.returncode == 0, ingested.stderr
    assert "stored=5" in ingested.stdout and "dead_lettered=1" in ingested.stdout, ingested.stdout
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar()
    engine.dispose()
    assert stored == 5
