"""The retrain API: jobs, gate reports, versions, rollouts with steps, manual rollback
(SQLite and PostgreSQL), with auth on writes and clear 4xx."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.settings import ApiSettings, RetrainSettings, Settings
from monitor.store.db import unit_of_work
from monitor.store.retrain_tables import CanaryReport
from retrain import jobs, registry, rollout
from retrain.deploy import FileTarget
from retrain.digits import SHIFTS, train_holdout
from retrain.export import session as ort_session
from retrain.gate import evaluate
from retrain.pipeline import publish_version, register_baseline
from retrain.recipes import digits_input, train_baseline

torch.set_num_threads(2)
TOKEN = "t0ken-for-tests-only-456"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(
    db_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> Iterator[tuple[TestClient, Settings, int]]:
    """v1 promoted, v2 gated (real report) and rolled out at 5%; a policy job queued."""
    settings = settings_for(
        db_url,
        api=ApiSettings(token=TOKEN),
        retrain=RetrainSettings(
            registry_dir=tmp_path / "registry", deployment_spec_path=tmp_path / "deploy.json"
        ),
    )
    _, hold = train_holdout(seed=0)
    net = train_baseline()
    register_baseline(settings, sessions, "digits", "v1", net, hold.images, hold.labels)
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    x = digits_input(hold.images[:300])
    shifted = digits_input(SHIFTS["blur"](hold.images[:200]))
    with unit_of_work(sessions) as s:
        job, _ = jobs.enqueue_job(s, "digits", "alert-1", reason="pixel alert")
        v1 = registry.get_version(s, "digits", "v1")
        v2 = publish_version(
            s, store, "digits", "v2", net, x, x, hold.labels[:300], settings, parent_version="v1"
        )
        report = evaluate(
            ort_session(store.path(v2, "onnx_int8").read_bytes()),
            ort_session(store.path(v1, "onnx_int8").read_bytes()),
            (shifted, hold.labels[:200]),
            (x, hold.labels[:300]),
            {"candidate": 1, "current": 1},
            settings.retrain,
        )
        s.add(
            CanaryReport(
                model="digits",
                candidate_version="v2",
                current_version="v1",
                job_id=job.id,
                passed=report.passed,
                reasons=report.reasons,
                report=report.to_dict(),
            )
        )
        job.candidate_version = "v2"
        ro = rollout.start(
            s, settings, store, FileTarget(settings.retrain.deployment_spec_path), v2
        )
        rollout_id = ro.id
    with TestClient(create_app(settings, engine, check_broker=False)) as client:
        yield client, settings, rollout_id


def test_jobs_list_get_and_manual_start(api: tuple[TestClient, Settings, int]) -> None:
    client, _, _ = api
    listed = client.get("/api/v1/retrain/jobs", params={"model": "digits"}).json()
    assert [(j["source"], j["state"], j["reason"]) for j in listed] == [
        ("policy", "queued", "pixel alert")
    ]
    one = client.get(f"/api/v1/retrain/jobs/{listed[0]['id']}").json()
    assert [h["state"] for h in one["history"]] == ["queued"]
    body = {
        "model": "digits",
        "key": "by-hand-1",
        "reason": "monthly refresh",
        "since": "2026-11-01T00:00:00Z",
    }
    made = client.post("/api/v1/retrain/jobs", json=body, headers=AUTH)
    assert made.status_code == 201, made.text
    assert made.json()["created"] is True and made.json()["source"] == "manual"
    assert made.json()["params"] == {"since": "2026-11-01T00:00:00+00:00"}
    again = client.post("/api/v1/retrain/jobs", json=body, headers=AUTH).json()
    assert again["created"] is False and again["id"] == made.json()["id"]
    assert len(client.get("/api/v1/retrain/jobs").json()) == 2


def test_gate_report_versions_and_rollouts(api: tuple[TestClient, Settings, int]) -> None:
    client, _, rollout_id = api
    job_id = client.get("/api/v1/retrain/jobs").json()[0]["id"]
    gate = client.get(f"/api/v1/retrain/jobs/{job_id}/gate").json()
    same = client.get("/api/v1/retrain/versions/digits/v2/gate").json()
    assert gate == same and gate["current_version"] == "v1"
    assert gate["summary"].startswith(f"verdict: {'PASS' if gate['passed'] else 'FAIL'}")
    assert set(gate["report"]["recent"]) == {"candidate", "current"}
    versions = client.get("/api/v1/retrain/versions", params={"model": "digits"}).json()
    assert [(v["version"], v["state"]) for v in versions] == [("v2", "canary"), ("v1", "promoted")]
    v2 = client.get("/api/v1/retrain/versions/digits/v2").json()
    assert set(v2["artifacts"]) >= {"torch", "onnx_fp32", "onnx_int8"}
    assert len(v2["artifacts"]["onnx_int8"]["sha256"]) == 64
    rollouts = client.get("/api/v1/retrain/rollouts", params={"state": "running"}).json()
    assert [(r["id"], r["weight"], r["plan"], r["steps"]) for r in rollouts] == [
        (rollout_id, 5, [5, 25, 50, 100], [])
    ]


def test_manual_rollback_needs_the_token_and_serves_stable(
    api: tuple[TestClient, Settings, int],
) -> None:
    client, settings, rollout_id = api
    url = f"/api/v1/retrain/rollouts/{rollout_id}/rollback"
    anonymous = client.post(url, json={"reason": "pager"})
    assert anonymous.status_code == 401 and "bearer" in anonymous.json()["detail"]
    wrong = client.post(url, json={"reason": "pager"}, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    assert client.get(f"/api/v1/retrain/rollouts/{rollout_id}").json()["state"] == "running"
    done = client.post(url, json={"reason": "pager says so"}, headers=AUTH)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "rolled_back"
    assert done.json()["reason"] == "manual: pager says so"
    spec = FileTarget(settings.retrain.deployment_spec_path).read()
    assert spec is not None and spec.canary is None and spec.stable.version == "v1"
    versions = {v["version"]: v["state"] for v in client.get("/api/v1/retrain/versions").json()}
    assert versions == {"v1": "promoted", "v2": "rolled_back"}
    twice = client.post(url, json={"reason": "again"}, headers=AUTH)
    assert twice.status_code == 409 and "already rolled_back" in twice.json()["detail"]


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "says"),
    [
        ("get", "/api/v1/retrain/jobs/999", None, 404, "retrain job 999 does not exist"),
        ("get", "/api/v1/retrain/versions/digits/v9", None, 404, "has no version v9"),
        ("get", "/api/v1/retrain/versions/digits/v1/gate", None, 404, "no gate report"),
        ("get", "/api/v1/retrain/rollouts/999", None, 404, "rollout 999 does not exist"),
        ("post", "/api/v1/retrain/rollouts/999/rollback", {"reason": "x"}, 404, "does not exist"),
        ("post", "/api/v1/retrain/rollouts/1/rollback", {"reason": ""}, 422, "reason"),
        ("post", "/api/v1/retrain/jobs", {"model": "bad name!"}, 422, "model"),
        (
            "post",
            "/api/v1/retrain/jobs",
            {"model": "digits", "since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
            422,
            "not before",
        ),
        (
            "post",
            "/api/v1/retrain/jobs",
            {"model": "digits", "since": "2026-11-02T00:00:00"},
            422,
            "time zone",
        ),
        ("get", "/api/v1/retrain/jobs?limit=0", None, 422, "limit"),
    ],
)
def test_bad_requests_say_why(
    api: tuple[TestClient, Settings, int], method: str, url: str, body: Any, status: int, says: str
) -> None:
    client, _, _ = api
    kwargs: dict[str, Any] = {"headers": AUTH}
    if body is not None:
        kwargs["json"] = body
    got = getattr(client, method)(url, **kwargs)
    assert got.status_code == status, got.text
    assert says in str(got.json()["detail"])


def test_writes_refused_without_a_token(api: tuple[TestClient, Settings, int]) -> None:
    client, _, _ = api
    got = client.post("/api/v1/retrain/jobs", json={"model": "digits"})
    assert got.status_code == 401
    assert client.get("/api/v1/retrain/jobs").json()[0]["source"] == "policy"
