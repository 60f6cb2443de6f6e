"""``POST /api/v1/logs``: the Kafka path's validation and dead-letter rules over HTTP, stored
once each with their tags on SQLite and PostgreSQL; ``GET /api/v1/logs/segment`` filters by tag."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from driftwatch_sdk import encode_label, encode_prediction
from ingest.broker import free_port
from monitor.api.app import create_app
from monitor.api.routes.logs import HTTP_SOURCE
from monitor.schemas import Rejected
from monitor.settings import ApiSettings, KafkaSettings, Settings
from monitor.store.tables import Prediction
from tests.test_ingest_worker import read_topic

TOKEN = "t0ken-for-http-ingest-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _log(i: int, **options: Any) -> dict[str, Any]:
    probs = np.random.default_rng(i).dirichlet(np.ones(4))
    return dict(json.loads(encode_prediction("digits", "v1", f"r{i}", probs, **options)))


def _batch() -> dict[str, Any]:
    broken = {**_log(3), "probabilities": [0.9, 0.9, 0.1, 0.1]}
    return {
        "predictions": [
            _log(0, tags={"camera": "dock-3", "site": "lyon"}),
            _log(1, tags={"camera": "dock-3"}),
            _log(2, tags={"camera": "gate"}, thumbnail=b"not an image"),  # slow lane rejects
            broken,
            _log(4),
        ],
        "labels": [json.loads(encode_label("digits", "r0", 2))],
    }


def test_a_batch_is_stored_once_and_rejects_are_dead_lettered(
    db_url: str,
    engine: Engine,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
) -> None:
    kafka = make_topics()
    settings = settings_for(db_url, kafka, api=ApiSettings(token=TOKEN))
    with TestClient(create_app(settings, engine, check_broker=False)) as client:
        assert client.post("/api/v1/logs", json=_batch()).status_code == 401
        first = client.post("/api/v1/logs", json=_batch(), headers=AUTH)
        again = client.post("/api/v1/logs", json=_batch(), headers=AUTH)
        segment = client.get(
            "/api/v1/logs/segment",
            params={"model": "digits", "version": "v1", "tag": ["camera:dock-3"]},
        )
        both = client.get(
            "/api/v1/logs/segment",
            params={"model": "digits", "version": "v1", "tag": ["camera:dock-3", "site:lyon"]},
        )
        none = client.get(
            "/api/v1/logs/segment", params={"model": "digits", "version": "v1", "tag": "site:x"}
        )
        bad = client.post(
            "/api/v1/logs", content=b"{nope", headers={**AUTH, "content-type": "application/json"}
        )
        untyped = client.post("/api/v1/logs", content=b"[]", headers=AUTH)
    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["received"], body["stored"], body["duplicates"], body["labels"]) == (6, 3, 0, 1)
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (2, "bad_image"),
        (3, "schema"),
    ]
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 3)
    with Session(engine) as session:
        rows = session.execute(select(Prediction.request_id, Prediction.tags, Prediction.label))
        stored = {r.request_id: (r.tags, r.label) for r in rows}
    assert stored == {
        "r0": ({"camera": "dock-3", "site": "lyon"}, 2),
        "r1": ({"camera": "dock-3"}, None),
        "r4": (None, None),
    }
    assert segment.status_code == 200 and segment.json()["n"] == 2
    assert sum(segment.json()["class_shares"].values()) == pytest.approx(1.0)
    assert both.json()["n"] == 1 and none.status_code == 404
    assert bad.status_code == 400 and untyped.status_code == 415
    dead = read_topic(kafka, kafka.dead_letter_topic, 4)  # two per accepted POST: the replay too
    assert len(dead) == 4
    records = [Rejected.model_validate_json(r.value) for r in dead]
    assert {(r.topic, r.reason, r.key) for r in records} == {
        (HTTP_SOURCE, "bad_image", "r2"),
        (HTTP_SOURCE, "schema", "r3"),
    }
    assert dict(dead[0].headers)["source_topic"] == HTTP_SOURCE.encode()


def test_an_unreachable_dead_letter_topic_answers_503_and_stores_nothing(
    sqlite_url: str, settings_for: Callable[..., Settings]
) -> None:
    kafka = KafkaSettings(bootstrap_servers=[f"127.0.0.1:{free_port()}"], request_timeout_ms=1000)
    settings = settings_for(sqlite_url, kafka, api=ApiSettings(token=TOKEN))
    app = create_app(settings, check_broker=False)
    with TestClient(app) as client:
        r = client.post("/api/v1/logs", json=_batch(), headers=AUTH)
    assert r.status_code == 503 and "retry" in r.json()["detail"]
    with Session(app.state.engine) as session:
        assert session.scalars(select(Prediction.id)).all() == []


def _cloudevent(kind: str, event_id: str, endpoint: str) -> dict[str, str]:
    """The binary-mode CloudEvent headers KServe's payload logger sends (pkg/logger)."""
    return {
        **AUTH,
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-source": "http://localhost:9081/",
        "ce-inferenceservicename": "digits",
        "ce-namespace": "ml",
        "ce-component": "predictor",
        "ce-endpoint": endpoint,
        "content-type": "application/json",
    }


def test_kserve_payload_logger_events(
    sqlite_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
) -> None:
    kafka = make_topics()
    settings = settings_for(sqlite_url, kafka, api=ApiSettings(token=TOKEN))
    app = create_app(settings, check_broker=False)
    url = "/api/v1/logs/kserve?version=v5"
    with TestClient(app) as client:
        req = client.post(
            url, content=b'{"instances": [[1, 2]]}', headers=_cloudevent("request", "e1", "canary")
        )
        resp = client.post(
            url,
            json={"predictions": [[0.1, 0.9], [0.7, 0.3]]},
            headers=_cloudevent("response", "e1", "canary"),
        )
        stable = client.post(
            url,
            json={"predictions": [[0.2, 0.8]]},
            headers=_cloudevent("response", "e2", "default"),
        )
        labels_only = client.post(
            url, json={"predictions": [1]}, headers=_cloudevent("response", "e3", "default")
        )
    assert req.status_code == 202 and req.json()["received"] == 0
    assert resp.json()["stored"] == 2 and stable.json()["stored"] == 1
    assert (
        labels_only.status_code == 202 and labels_only.json()["rejected"][0]["reason"] == "schema"
    )
    with Session(app.state.engine) as session:
        rows = session.execute(
            select(Prediction.request_id, Prediction.model_version, Prediction.arm, Prediction.tags)
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("e1-0", "v5", "canary", {"namespace": "ml", "component": "predictor"}),
        ("e1-1", "v5", "canary", {"namespace": "ml", "component": "predictor"}),
        ("e2", "v5", "stable", {"namespace": "ml", "component": "predictor"}),
    ]
    assert len(read_topic(kafka, kafka.dead_letter_topic, 1)) == 1
