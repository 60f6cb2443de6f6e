"""The HTTP API: auth on writes, clear 4xx, valid OpenAPI, Prometheus /metrics from the store."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.detectors.simulate import synthetic_batch
from monitor.settings import ApiSettings, Settings
from tests.seed import seed_drift

TOKEN = "t0ken-for-tests-only-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def client(
    db_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
) -> Iterator[TestClient]:
    seed_drift(sessions, NOW)
    settings = settings_for(
        db_url, api=ApiSettings(token=TOKEN, max_page_size=5, max_upload_bytes=4096)
    )
    with TestClient(create_app(settings, engine, check_broker=False)) as c:
        yield c


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}


def test_openapi_document_is_valid(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    validate(doc)
    assert {
        "/api/v1/models/{model}/drift",
        "/api/v1/alerts/{alert_id}/ack",
        "/api/v1/profiles/fit",
        "/metrics",
    } <= set(doc["paths"])


def test_writes_need_the_bearer_token(client: TestClient) -> None:
    missing = client.post("/api/v1/alerts/1/ack", json={"by": "me"})
    assert missing.status_code == 401 and "bearer token" in missing.json()["detail"]
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.post(
        "/api/v1/alerts/1/ack", json={"by": "me"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid bearer token"
    ok = client.post("/api/v1/alerts/1/ack", json={"by": "alice"}, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["acked_by"] == "alice"
    assert client.get("/api/v1/alerts").json()["items"][0]["acked_by"] == "alice"


def test_writes_refused_without_a_configured_token(
    db_url: str, engine: Engine, settings_for: Callable[..., Settings]
) -> None:
    with TestClient(create_app(settings_for(db_url), engine, check_broker=False)) as c:
        r = c.post("/api/v1/alerts/1/ack", json={}, headers=AUTH)
    assert r.status_code == 403 and "no api.token is configured" in r.json()["detail"]


def test_reads_can_be_protected(
    db_url: str, engine: Engine, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(db_url, api=ApiSettings(token=TOKEN, protect_reads=True))
    with TestClient(create_app(settings, engine, check_broker=False)) as c:
        assert c.get("/api/v1/models").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/api/v1/models", headers=AUTH).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_silence_and_clear_4xx(client: TestClient) -> None:
    r = client.post("/api/v1/alerts/1/silence", json={"minutes": 30}, headers=AUTH)
    assert r.status_code == 200 and r.json()["silenced_until"] is not None
    too_long = client.post("/api/v1/alerts/1/silence", json={"minutes": 10**6}, headers=AUTH)
    assert too_long.status_code == 422 and "minutes" in str(too_long.json()["detail"])
    missing = client.post("/api/v1/alerts/999/ack", json={}, headers=AUTH)
    assert missing.status_code == 404 and missing.json()["detail"] == "alert 999 does not exist"
    over = client.get("/api/v1/models/digits/drift", params={"limit": 50})
    assert over.status_code == 422
    assert over.json()["detail"] == "limit 50 is over the maximum page size 5"
    backwards = client.get(
        "/api/v1/models/digits/drift",
        params={"start": NOW.isoformat(), "end": (NOW - timedelta(days=1)).isoformat()},
    )
    assert backwards.status_code == 422 and "is not before end" in backwards.json()["detail"]
    bad_family = client.get("/api/v1/models/digits/drift", params={"family": "colour"})
    assert bad_family.status_code == 422


def test_drift_history_pages_through_a_time_range(client: TestClient) -> None:
    params = {
        "start": (NOW - timedelta(hours=10, minutes=30)).isoformat(),
        "end": NOW.isoformat(),
        "limit": 4,
        "features": True,
    }
    seen, cursor = [], None
    while True:
        page = client.get(
            "/api/v1/models/digits/drift",
            params={**params, **({"cursor": cursor} if cursor else {})},
        ).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 10  # windows ending in the last 10.5 h
    ends = [item["window_end"] for item in seen]
    assert ends == sorted(ends) and len(set(ends)) == 10
    assert seen[-1]["drifted"] and seen[-1]["features"][0]["name"] == "brightness"
    lean = client.get("/api/v1/models/digits/drift", params={"limit": 1}).json()["items"][0]
    assert "features" not in lean and lean["family"] == "pixel"
    models = client.get("/api/v1/models").json()
    assert models[0]["model"] == "digits" and models[0]["windows"] == 12
    assert models[0]["states"] == {"pixel": "alert"}


def test_metrics_parse_and_carry_drift_gauges(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    stat = families["driftwatch_drift_statistic"].samples
    assert [(s.labels["model"], s.labels["family"], s.value) for s in stat] == [
        ("digits", "pixel", 0.4)
    ]
    assert families["driftwatch_drift_state"].samples[0].value == 2.0
    assert families["driftwatch_drift_detected"].samples[0].value == 1.0
    change = families["driftwatch_feature_change"].samples[0]
    assert change.labels["feature"] == "brightness" and change.value == pytest.approx(-0.18)
    active = families["driftwatch_alerts_active"].samples[0]
    assert (active.labels["severity"], active.value) == ("critical", 1.0)
    assert "driftwatch_windows_evaluated" not in families  # a row count is no counter
    levels = {s.labels["level"]: s.value for s in families["driftwatch_drift_threshold"].samples}
    assert levels == {"warn": 0.1, "alert": pytest.approx(0.2)}


def test_profile_upload_fit_and_activate(client: TestClient) -> None:
    batch = synthetic_batch(300, seed=0)
    buf = io.BytesIO()
    np.savez(
        buf,
        probs=batch.probs,
        predicted=batch.predicted,
        embeddings=batch.embeddings,
        pixel=batch.pixel,
    )
    data = buf.getvalue()
    params = {"model": "digits", "version": "v2", "name": "upload", "format": "npz"}
    too_big = client.put("/api/v1/profiles/upload", params=params, content=data, headers=AUTH)
    assert too_big.status_code == 413 and "4096-byte limit" in too_big.json()["detail"]
    no_auth = client.put("/api/v1/profiles/upload", params=params, content=b"x")
    assert no_auth.status_code == 401
    bad_name = client.put(
        "/api/v1/profiles/upload", params={**params, "model": "a b"}, content=b"x", headers=AUTH
    )
    assert bad_name.status_code == 422
    missing = client.post("/api/v1/profiles/77/activate", headers=AUTH)
    assert missing.status_code == 404 and "77" in missing.json()["detail"]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if schema.get("type") == "array":
        return _resolve(doc, schema["items"])
    return schema


def test_every_json_2xx_response_has_a_typed_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    untyped = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                json_body = response.get("content", {}).get("application/json")
                if not status.startswith("2") or json_body is None:
                    continue
                if not _resolve(doc, json_body["schema"]).get("properties"):
                    untyped.append(f"{method.upper()} {path} {status}")
    assert not untyped, untyped
    html_or_text = [
        path
        for path, ops in doc["paths"].items()
        if "application/json"
        not in ops["get" if "get" in ops else next(iter(ops))]["responses"]
        .get("200", {})
        .get("content", {"application/json": {}})
    ]
    assert sorted(html_or_text) == [
        "/api/v1/windows/{window_id}/outliers/page",
        "/metrics",
        "/status/{model}",
    ]
