"""Liveness you can page on: a supervised ``serve --ingest`` (readiness 503 and exit status 70
when the worker dies), true consumer lag read while the worker is stalled, and the alert rules
for a stalled ingest and a silent model run through ``promtool test rules``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from dashboards.rules import alerting_rules, write_rules
from ingest.broker import LocalBroker, free_port
from ingest.liveness import Heartbeat, LagMonitor, Supervisor
from ingest.worker import IngestWorker
from monitor.cli.service import EXIT_INGEST_DIED
from monitor.schemas import PredictionLog
from monitor.settings import IngestSettings, KafkaSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-c", "from monitor.cli import main; main()")


@pytest.fixture
def not_kafka() -> Iterator[int]:
    """A TCP port that accepts connections and closes them: reachable, but no Kafka."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    done.set()
    thread.join()
    server.close()


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_ingest_fails_readiness_and_exits_70_when_the_worker_dies(
    sqlite_url: str, not_kafka: int, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DRIFTWATCH_ENVIRONMENT": "test",
        "DRIFTWATCH_DATABASE__URL": sqlite_url,
        "DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{not_kafka}",
        "DRIFTWATCH_API__PORT": str(port),
    }
    stderr = tmp_path / "serve.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "serve", "--ingest", "--exit-delay", "5"],
            env=env,
            stdout=err,
            stderr=subprocess.STDOUT,
        )
        not_ready: list[dict[str, Any]] = []
        try:
            while proc.poll() is None and not not_ready:
                try:
                    status, body = _get(f"http://127.0.0.1:{port}/readyz")
                except (OSError, ValueError):
                    time.sleep(0.1)
                    continue
                if status == 503:
                    not_ready.append(body)
                time.sleep(0.1)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = stderr.read_text()
    assert not_ready, output
    # the broker check passes (the port accepts TCP): readiness fails because of ingest alone
    checks = not_ready[0]["checks"]
    assert {name for name, said in checks.items() if said != "ok"} == {"ingest"}, checks
    assert "ingest worker died: BrokerUnavailable" in not_ready[0]["checks"]["ingest"]
    assert code == EXIT_INGEST_DIED == 70, output
    assert "the ingest worker died: BrokerUnavailable" in output
    assert f"exit status {EXIT_INGEST_DIED}" in output


def test_supervisor_reports_a_worker_that_returned_or_stopped_polling() -> None:
    heartbeat = Heartbeat()
    died: list[str] = []
    sup = Supervisor(lambda: None, heartbeat, stale_seconds=3600, on_death=died.append).start()
    sup.join(timeout=10)
    assert died == ["the ingest worker returned without being asked to stop"]
    assert sup.problem() == died[0]

    release = threading.Event()
    stuck = Supervisor(release.wait, heartbeat, stale_seconds=0.0).start()
    heartbeat.last = time.monotonic() - 1.0
    assert stuck.problem() is not None and "has not polled" in stuck.problem()  # type: ignore[operator]
    heartbeat.beat()
    fresh = Supervisor(release.wait, heartbeat, stale_seconds=3600).start()
    assert fresh.problem() is None
    stuck.stopping = fresh.stopping = True
    release.set()
    stuck.join(timeout=10)
    fresh.join(timeout=10)


def _produce(kafka: KafkaSettings, logs: list[PredictionLog]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5)
    for item in logs:
        producer.send(kafka.predictions_topic, value=item.model_dump_json().encode())
    producer.flush()
    producer.close()


def _lag(kafka: KafkaSettings) -> float | None:
    return REGISTRY.get_sample_value(
        "driftwatch_ingest_consumer_lag", {"topic": kafka.predictions_topic, "partition": "0"}
    )


def test_lag_gauge_reads_the_true_lag_while_the_worker_is_stalled(
    broker: LocalBroker,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
    sqlite_url: str,
    make_log: Callable[..., PredictionLog],
) -> None:
    kafka = make_topics()
    settings = settings_for(sqlite_url, kafka, ingest=IngestSettings(batch_max_seconds=0.2))
    _produce(kafka, [make_log() for _ in range(30)])
    stats = IngestWorker(settings).run(max_messages=30, idle_timeout=20)
    assert stats.stored == 30
    assert _lag(kafka) == 0  # the worker's own gauge, set when it last committed

    # the worker is stalled (not polling, not committing) while producers go on
    _produce(kafka, [make_log() for _ in range(45)])
    assert _lag(kafka) == 0  # nothing in the worker refreshes its gauge now
    monitor = LagMonitor(kafka)
    try:
        assert monitor.refresh() == {(kafka.predictions_topic, 0): 45, (kafka.labels_topic, 0): 0}
    finally:
        monitor.stop()
    assert _lag(kafka) == 45


def _rendered(alert: str, **rendered: str) -> dict[str, str]:
    rules = [r for g in alerting_rules(Settings())["groups"] for r in g["rules"]]
    annotations = dict(next(r for r in rules if r["alert"] == alert)["annotations"])
    return {**annotations, **rendered}


def _alert(name: str, severity: str, labels: dict[str, str], **text: str) -> dict[str, Any]:
    exp = {"severity": severity, "service": "driftwatch", **labels}
    return {"exp_labels": exp, "exp_annotations": _rendered(name, **text)}


def test_stalled_ingest_rules_fire_under_promtool(tmp_path: Path) -> None:
    rules = write_rules(Settings(), tmp_path / "rules.yaml")
    poll = "driftwatch_ingest_last_poll_timestamp_seconds"
    lag, msgs = "driftwatch_ingest_consumer_lag", "driftwatch_ingest_messages_total"
    stalled = "Ingest worker w1 has not polled Kafka"
    cases = [
        ("4m", "DriftwatchIngestStalled", []),
        ("10m", "DriftwatchIngestStalled", [_alert("DriftwatchIngestStalled", "critical",
                                                    {"instance": "w1"}, summary=stalled)]),
        ("4m", "DriftwatchIngestNoProgress", []),
        ("15m", "DriftwatchIngestNoProgress", [_alert(
            "DriftwatchIngestNoProgress", "critical", {"topic": "p"},
            summary="Ingest lag on p grows and nothing is stored")]),
    ]  # fmt: skip
    spec = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # polls every minute for 5 minutes, then never again
                    {"series": f'{poll}{{instance="w1"}}', "values": "0+60x5 300x20"},
                    # p: lag grows from minute 5 and nothing is consumed; q: lag grows but
                    # messages are consumed (a busy, healthy worker)
                    {"series": f'{lag}{{topic="p",partition="0"}}', "values": "0x5 0+100x20"},
                    {"series": f'{msgs}{{topic="p",outcome="stored"}}', "values": "10x25"},
                    {"series": f'{lag}{{topic="q",partition="0"}}', "values": "0+100x25"},
                    {"series": f'{msgs}{{topic="q",outcome="stored"}}', "values": "0+50x25"},
                ],
                "alert_rule_test": [
                    {"eval_time": at, "alertname": name, "exp_alerts": exp}
                    for at, name, exp in cases
                ],
            }
        ],
    }
    path = tmp_path / "rules_test.yaml"
    path.write_text(yaml.safe_dump(spec))
    run = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
