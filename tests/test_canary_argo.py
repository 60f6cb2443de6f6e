"""Argo Rollouts' contract: the chart's AnalysisTemplate, rendered by Helm, evaluated (with
tests/argo_analysis.py, Argo's documented expr and metric-assessment semantics) against the real
verdict endpoint's answers over logs in SQLite and PostgreSQL; and Driftwatch down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.schemas import PredictionLog
from monitor.settings import DatabaseSettings, RetrainSettings, Settings
from monitor.store.db import make_engine, unit_of_work
from monitor.store.ingest_repo import insert_predictions
from tests.argo_analysis import ExprError, evaluate, measure, run
from tests.test_helm_chart import named, render

# The arms as logged. Argo passes the pod-template hashes; the log schema accepts the arm names
# stable/canary today, and the endpoint takes whatever arm strings the logs carry.
STABLE, CANARY = "stable", "canary"
ARGO = {"canaryAnalysis": {"argo": {"enabled": True, "count": 3, "prometheusAddress": "http://p"}}}


@pytest.fixture
def client(
    db_url: str, engine: Engine, settings_for: Callable[..., Settings]
) -> Iterator[TestClient]:
    settings = settings_for(db_url, retrain=RetrainSettings(step_min_logs=60, min_arm_labels=50))
    with TestClient(create_app(settings, engine, check_broker=False)) as c:
        yield c


def emit(
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    arm: str,
    n: int,
    acc: float,
    ago: timedelta = timedelta(0),
) -> None:
    rng = np.random.default_rng(n)
    logs = []
    for i in range(n):
        label = int(rng.integers(0, 10))
        pred = label if i < round(acc * n) else (label + 1) % 10
        probs = np.full(10, 0.1 / 9)
        probs[pred] = 0.9
        logs.append(
            make_log(
                arm=arm,
                predicted_class=pred,
                label=label,
                probabilities=probs.tolist(),
                latency_ms=2.0,
                timestamp=datetime.now(UTC) - ago,
            )
        )
    with unit_of_work(sessions) as s:
        insert_predictions(s, logs)


def template_metric(kind: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    docs = render(ARGO)
    name = "dw-driftwatch-canary-verdict" + kind
    tpl = named(docs, "AnalysisTemplate", name)
    (metric,) = tpl["spec"]["metrics"]
    return tpl, metric


def ask(client: TestClient, metric: dict[str, Any], args: dict[str, str]) -> tuple[int, bytes]:
    """What Argo's web provider would GET: the template URL with the run's args filled in."""
    url = metric["provider"]["web"]["url"]
    for key, value in args.items():
        url = url.replace("{{args." + key + "}}", value)
    assert "{{" not in url
    parts = urlsplit(url)
    assert parts.netloc == "dw-driftwatch-api.mon.svc:8000"
    answer = client.get(f"{parts.path}?{parts.query}")
    return answer.status_code, answer.content


ARGS = {"model": "digits", "stable-hash": STABLE, "canary-hash": CANARY, "max-wait-seconds": "600"}


def test_template_renders_only_when_enabled_and_bounds_waits() -> None:
    assert not [d for d in render() if d["kind"] == "AnalysisTemplate"]
    tpl, metric = template_metric()
    assert [a["name"] for a in tpl["spec"]["args"]][:3] == ["model", "stable-hash", "canary-hash"]
    # count waits are one more than inconclusiveLimit: never Successful.
    assert metric["inconclusiveLimit"] == metric["count"] - 1 and metric["failureLimit"] == 0


def test_verdicts_drive_the_analysis(
    client: TestClient, sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    _, metric = template_metric()
    emit(sessions, make_log, CANARY, 10, 0.9)
    emit(sessions, make_log, STABLE, 200, 0.9)
    wait = ask(client, metric, ARGS)
    assert wait[0] == 200 and measure(metric, *wait) == "Inconclusive"
    body = client.get(
        "/api/v1/canary/digits/verdict", params={"stable": STABLE, "canary": CANARY}
    ).json()
    assert body["verdict"] == "wait" and body["ready"] is False
    assert body["canary"]["n"] == 10 and body["thresholds"]["min_logs"] == 60
    # A run of waits ends Inconclusive (the rollout pauses), never Successful.
    assert run(metric, [wait] * 3) == "Inconclusive"

    emit(sessions, make_log, CANARY, 90, 0.9)
    advance = ask(client, metric, ARGS)
    body = client.get(
        "/api/v1/canary/digits/verdict", params={"stable": STABLE, "canary": CANARY}
    ).json()
    assert body["verdict"] == "advance" and body["ready"] is True, body["reason"]
    assert body["canary"]["estimated_accuracy"] == pytest.approx(0.9)
    assert len(body["canary"]["class_shares"]) == 10
    assert run(metric, [advance] * 3) == "Successful"
    assert run(metric, [wait, wait, advance]) == "Successful"

    metrics = client.get("/metrics").text
    line = f'driftwatch_canary_verdict{{canary="{CANARY}",model="digits",stable="{STABLE}"}} 1.0'
    assert line in metrics

    emit(sessions, make_log, CANARY, 100, 0.3)
    emit(sessions, make_log, STABLE, 100, 0.9)
    rollback = ask(client, metric, ARGS)
    assert rollback[0] == 200 and measure(metric, *rollback) == "Failed"
    assert run(metric, [advance, rollback]) == "Failed"
    assert run(metric, [wait, wait, rollback]) == "Failed"


def test_a_wait_past_the_maximum_is_a_rollback(
    client: TestClient, sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    _, metric = template_metric()
    emit(sessions, make_log, CANARY, 5, 0.9, ago=timedelta(hours=2))
    emit(sessions, make_log, STABLE, 100, 0.9, ago=timedelta(hours=1))
    status, body = ask(client, metric, ARGS)
    assert status == 200 and measure(metric, status, body) == "Failed"
    assert b"more than max_wait 600 s" in body


def test_broken_driftwatch_and_bodies_that_must_not_pass() -> None:
    _, metric = template_metric()
    # Nothing listens on port 1: the database is unreachable.
    broken = make_engine(DatabaseSettings(url="postgresql://dw@127.0.0.1:1/driftwatch"))
    app = create_app(Settings(environment="test"), broken, check_broker=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        status, body = ask(c, metric, ARGS)
    assert status >= 500 and measure(metric, status, body) == "Error", body
    assert run(metric, [(status, body)] * 5) == "Error"
    # Argo's known bug: an empty or non-JSON 200 must never count as a pass.
    for bad in (b"", b"<html>ok</html>", b"null", b'"advance"', b"[]"):
        assert measure(metric, 200, bad) in ("Error", "Failed"), bad
        assert run(metric, [(200, bad)] * 5) in ("Error", "Failed")
    assert measure(metric, 200, b"{}") == "Failed"
    assert measure(metric, 200, b'{"verdict": "advance"}') == "Inconclusive"


def test_prometheus_template_reads_the_gauge() -> None:
    _, metric = template_metric("-prometheus")
    query = metric["provider"]["prometheus"]["query"]
    assert query.startswith("max(driftwatch_canary_verdict{") and "{{args.canary-hash}}" in query
    cases = {b"[1]": "Successful", b"[0]": "Inconclusive", b"[-1]": "Failed", b"[]": "Inconclusive"}
    for body, phase in cases.items():
        assert measure(metric, 200, body) == phase, body


def test_expr_evaluator_follows_expr_semantics() -> None:
    r = {"verdict": "wait", "n": 3, "xs": [1, 2]}
    assert evaluate('result.verdict == "wait" && result.n >= 3', r) is True
    assert evaluate("result.missing == nil", r) is True
    assert evaluate('result.verdict in ["advance", "wait"]', r) is True
    assert evaluate("len(result.xs) == 2 and not (result.xs[0] > 1)", r) is True
    for bad in (
        "result.verdict.x",
        "result.n < 'a'",
        "!result.n",
        "result.n && true",
        "result.xs[5]",
    ):
        with pytest.raises(ExprError):
            evaluate(bad, r)
