"""Flagger's contract: its webhook payload (``CanaryWebhookPayload``: name, namespace, phase,
checksum, type, metadata as a string map) POSTed to each hook, the status codes Flagger acts on
(2xx goes on; anything else holds a confirm hook or fails a rollout check), and the chart's
MetricTemplate over the verdict gauge."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.schemas import PredictionLog
from monitor.settings import RetrainSettings, Settings
from tests.test_canary_argo import CANARY, STABLE, emit
from tests.test_helm_chart import named, render

HOOKS = ("rollout", "confirm-traffic-increase", "confirm-promotion")


@pytest.fixture
def client(
    db_url: str, engine: Engine, settings_for: Callable[..., Settings]
) -> Iterator[TestClient]:
    settings = settings_for(db_url, retrain=RetrainSettings(step_min_logs=60, min_arm_labels=50))
    with TestClient(create_app(settings, engine, check_broker=False)) as c:
        yield c


def payload(hook: str, **meta: str) -> dict[str, Any]:
    return {
        "name": "digits-server",
        "namespace": "ml",
        "phase": "Progressing",
        "checksum": "6c7d5f9b8",
        "type": hook,
        "metadata": {"model": "digits", "stable": STABLE, "canary": CANARY, **meta},
    }


def statuses(client: TestClient, **meta: str) -> dict[str, int]:
    return {
        hook: client.post(f"/api/v1/canary/flagger/{hook}", json=payload(hook, **meta)).status_code
        for hook in HOOKS
    }


def test_hooks_answer_as_flagger_acts(
    client: TestClient, sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    emit(sessions, make_log, CANARY, 10, 0.9)
    emit(sessions, make_log, STABLE, 200, 0.9)
    # wait: the rollout check passes (no failed check), the weight and promotion hold.
    assert statuses(client) == {
        "rollout": 200,
        "confirm-traffic-increase": 403,
        "confirm-promotion": 403,
    }
    answer = client.post("/api/v1/canary/flagger/rollout", json=payload("rollout")).json()
    assert answer["verdict"] == "wait" and answer["target"] == "ml/digits-server"

    emit(sessions, make_log, CANARY, 90, 0.9)
    emit(sessions, make_log, STABLE, 100, 0.9)
    assert set(statuses(client).values()) == {200}

    emit(sessions, make_log, CANARY, 100, 0.3)
    emit(sessions, make_log, STABLE, 100, 0.9)
    got = statuses(client)
    assert got["rollout"] == 412 and got["confirm-traffic-increase"] == 403
    body = client.post("/api/v1/canary/flagger/rollout", json=payload("rollout")).json()
    assert body["verdict"] == "rollback" and "canary accuracy" in body["reason"]


def test_bad_payloads_are_refused(client: TestClient) -> None:
    assert client.post("/api/v1/canary/flagger/rollout", json={"name": "x"}).status_code == 422
    bad = payload("rollout", max_wait_s="soon")
    assert client.post("/api/v1/canary/flagger/rollout", json=bad).status_code == 400
    assert client.post("/api/v1/canary/flagger/pre-rollout", json=payload("x")).status_code == 422


def test_metric_template_queries_the_verdict_gauge() -> None:
    assert not [d for d in render() if d["kind"] == "MetricTemplate"]
    docs = render({"canaryAnalysis": {"flagger": {"enabled": True}}})
    tpl = named(docs, "MetricTemplate", "dw-driftwatch-canary-verdict")
    assert tpl["apiVersion"] == "flagger.app/v1beta1"
    assert tpl["spec"]["provider"]["type"] == "prometheus"
    query = tpl["spec"]["query"]
    assert "driftwatch_canary_verdict{" in query and "{{ variables.canary }}" in query
