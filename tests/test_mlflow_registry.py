"""The MLflow mirror of the registry, against a real ``mlflow server`` (SQLite store, proxied
artifacts): candidates become model versions with their gate report and ONNX files, promotion
and rollback move the ``champion`` alias, and an unreachable server delays the mirror without
blocking Driftwatch's own promote or rollback."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from ingest.broker import free_port
from monitor.settings import MlflowSettings, RetrainSettings, Settings
from monitor.store.db import unit_of_work
from monitor.store.retrain_tables import CanaryReport, ModelVersion, Rollout
from monitor.store.versions import promoted_version
from retrain import registry, registry_mirror, rollout
from retrain.deploy import FileTarget
from retrain.digits import train_holdout
from retrain.export import run, session
from retrain.gate import evaluate
from retrain.mlflow_registry import MlflowRegistry, MlflowVersion
from retrain.pipeline import build_artifacts
from retrain.recipes import digits_input, state_bytes, train_baseline
from tests.mlflow_server import MlflowServer

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real tracking server for the module; each test uses its own registered model."""
    with MlflowServer(tmp_path_factory.mktemp("mlflow")) as server:
        yield server.url


@dataclass
class Canary:
    settings: Settings
    sessions: sessionmaker[Session]
    store: registry.ArtifactStore
    target: FileTarget
    model: str
    rollout_id: int
    gate: dict[str, object]

    def client(self) -> MlflowRegistry:
        return MlflowRegistry(self.settings.retrain.mlflow)

    def mirrored(self, version: str) -> MlflowVersion:
        found = self.client().find_version(self.model, version)
        assert found is not None, f"{self.model} {version} is not in MLflow"
        return found

    def alias(self, alias: str) -> str | None:
        """The Driftwatch version ``alias`` points to, or None."""
        got = self.client().alias(self.model, alias)
        return None if got is None else got.tags["driftwatch.version"]


def _settings(db_url: str, tmp_path: Path, tracking_uri: str, timeout_s: float = 60) -> Settings:
    return Settings(
        environment="test",
        database={"url": db_url},
        retrain=RetrainSettings(
            registry_dir=tmp_path / "registry",
            deployment_spec_path=tmp_path / "deploy.json",
            registry_backend="mlflow",
            mlflow=MlflowSettings(tracking_uri=tracking_uri, timeout_s=timeout_s),
        ),
    )


@pytest.fixture(scope="module")
def built() -> tuple[bytes, bytes, dict[str, Any], bytes]:
    """One real build (ONNX FP32, INT8, figures, torch weights), registered by every test."""
    _, hold = train_holdout(seed=0)
    net = train_baseline()
    x = digits_input(hold.images[:300])
    settings = Settings(environment="test")
    fp32, int8, figures = build_artifacts(net, x, x, hold.labels[:300], settings)
    return fp32, int8, figures, state_bytes(net)


def _register(
    s: Session,
    store: registry.ArtifactStore,
    model: str,
    version: str,
    built: tuple[bytes, bytes, dict[str, Any], bytes],
    **kw: Any,
) -> ModelVersion:
    fp32, int8, figures, weights = built
    with store.stage(model, version) as st:
        st.write("torch", "model.pt", weights)
        st.write("onnx_fp32", "model.fp32.onnx", fp32)
        st.write("onnx_int8", "model.int8.onnx", int8)
    return registry.register(s, model, version, st.artifacts, metrics=figures, **kw)


@pytest.fixture
def make_canary(
    sessions: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    mlflow_url: str,
    built: tuple[bytes, bytes, dict[str, Any], bytes],
) -> Callable[[], Canary]:
    """v1 promoted; v2 passed a real offline gate against it and is the canary at 5%."""

    def build() -> Canary:
        settings = _settings(db_url, tmp_path, mlflow_url)
        model = f"digits-{uuid.uuid4().hex[:8]}"
        store = registry.ArtifactStore(settings.retrain.registry_dir)
        target = FileTarget(settings.retrain.deployment_spec_path)
        _, hold = train_holdout(seed=0)
        x, y = digits_input(hold.images[:300]), hold.labels[:300]
        with unit_of_work(sessions) as s:
            v1 = _register(s, store, model, "v1", built, state="promoted", recipe="baseline")
            v2 = _register(s, store, model, "v2", built, parent_version="v1", recipe="test")
            report = evaluate(
                session(store.path(v2, "onnx_fp32")),
                session(store.path(v1, "onnx_fp32")),
                (x, y),
                (x, y),
                {"candidate": 1, "current": 1},
                settings.retrain,
            ).to_dict()
            s.add(
                CanaryReport(
                    model=model,
                    candidate_version="v2",
                    current_version="v1",
                    passed=report["passed"],
                    reasons=report["reasons"],
                    report=report,
                )
            )
            ro = rollout.start(s, settings, store, target, v2)
            rollout_id = ro.id
        return Canary(settings, sessions, store, target, model, rollout_id, report)

    return build


def _finish(c: Canary, promote: bool) -> None:
    with unit_of_work(c.sessions) as s:
        ro = s.get(Rollout, c.rollout_id)
        assert ro is not None
        rollout.finish(s, c.store, c.target, ro, promote, "test")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_candidate_is_a_model_version_with_its_gate_report_and_onnx_that_runs(
    make_canary: Callable[[], Canary],
) -> None:
    c = make_canary()
    synced = registry_mirror.sync(c.settings, c.sessions)[c.model]
    assert (synced.delivered, synced.pending, synced.error) == (3, 0, None)
    v2 = c.mirrored("v2")
    recent = c.gate["recent"]["candidate"]  # type: ignore[index]
    assert v2.tags["gate.passed"] == str(c.gate["passed"]).lower()
    assert float(v2.tags["gate.recent.candidate.accuracy"]) == recent["accuracy"]
    assert v2.tags["driftwatch.state"] == "canary"
    assert (c.alias("champion"), c.alias("challenger"), c.alias("previous")) == ("v1", "v2", None)

    with unit_of_work(c.sessions) as s:
        local = registry.get_version(s, c.model, "v2")
        x = digits_input(train_holdout(seed=0)[1].images[:4])
        for name in ("onnx_fp32", "onnx_int8"):
            data = c.client().download(v2, name)
            assert data == c.store.path(local, name).read_bytes()
            logits, _ = run(session(data), x)
            expected, _ = run(session(c.store.path(local, name)), x)
            assert logits.shape == (4, 10)
            np.testing.assert_array_equal(logits, expected)

    # Delivered events are not delivered twice: still one MLflow version per Driftwatch version.
    assert registry_mirror.sync(c.settings, c.sessions)[c.model].delivered == 0
    assert c.mirrored("v2").version == v2.version
    assert int(c.mirrored("v1").version) < int(v2.version)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_promotion_moves_champion_and_the_stable_stays_reachable_as_previous(
    make_canary: Callable[[], Canary],
) -> None:
    c = make_canary()
    _finish(c, promote=True)
    assert registry_mirror.sync(c.settings, c.sessions)[c.model].pending == 0
    assert (c.alias("champion"), c.alias("previous"), c.alias("challenger")) == ("v2", "v1", None)
    assert c.mirrored("v2").tags["driftwatch.state"] == "promoted"
    assert c.mirrored("v1").tags["driftwatch.state"] == "retired"

    c.client().roll_back(c.mirrored("v1"))
    assert (c.alias("champion"), c.alias("previous")) == ("v1", "v2")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_rolled_back_canary_leaves_champion_on_the_stable_and_drops_the_challenger(
    make_canary: Callable[[], Canary],
) -> None:
    c = make_canary()
    registry_mirror.sync(c.settings, c.sessions)
    assert c.alias("challenger") == "v2"
    with unit_of_work(c.sessions) as s:
        rollout.roll_back(s, c.settings, c.rollout_id, "manual: test")
    assert registry_mirror.sync(c.settings, c.sessions)[c.model].delivered == 1
    assert (c.alias("champion"), c.alias("challenger")) == ("v1", None)
    assert c.mirrored("v2").tags["driftwatch.state"] == "rolled_back"


def _failures(model: str, outcome: str) -> float:
    labels = {"model": model, "outcome": outcome}
    return REGISTRY.get_sample_value("driftwatch_registry_mirror_failures_total", labels) or 0.0


def test_mlflow_down_the_promote_commits_and_the_mirror_catches_up_in_order(
    make_canary: Callable[[], Canary], db_url: str, tmp_path: Path
) -> None:
    c = make_canary()
    down = _settings(db_url, tmp_path, f"http://127.0.0.1:{free_port()}", timeout_s=2)
    first = registry_mirror.sync(down, c.sessions)[c.model]
    assert first.delivered == 0 and first.pending == 3
    assert first.error is not None and "MLflow at http://127.0.0.1" in first.error
    assert _failures(c.model, "retried") == 1

    _finish(c, promote=True)  # Driftwatch's own state does not wait for MLflow
    with unit_of_work(c.sessions) as s:
        promoted = promoted_version(s, c.model)
        assert promoted is not None and promoted.version == "v2"
    assert registry_mirror.sync(down, c.sessions)[c.model].pending == 5
    labels = {"model": c.model}
    assert REGISTRY.get_sample_value("driftwatch_registry_mirror_pending", labels) == 5

    caught_up = registry_mirror.sync(c.settings, c.sessions)[c.model]
    assert (caught_up.delivered, caught_up.pending, caught_up.error) == (5, 0, None)
    assert (c.alias("champion"), c.alias("previous"), c.alias("challenger")) == ("v2", "v1", None)
    assert REGISTRY.get_sample_value("driftwatch_registry_mirror_pending", labels) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_version_with_a_corrupt_artifact_is_dead_lettered_and_the_rest_still_mirrors(
    make_canary: Callable[[], Canary],
) -> None:
    c = make_canary()
    with unit_of_work(c.sessions) as s:
        c.store.path(registry.get_version(s, c.model, "v2"), "onnx_fp32").write_bytes(b"junk")
    synced = registry_mirror.sync(c.settings, c.sessions)[c.model]
    assert (synced.delivered, synced.dead_lettered, synced.pending) == (1, 2, 0)
    assert _failures(c.model, "dead_lettered") == 2
    with unit_of_work(c.sessions) as s:
        failed = [e for e in registry.history(s, c.model) if e.event == "mlflow_mirror_failed"]
    assert [e.detail["of"] for e in failed] == ["registered", "state_canary"]
    assert "corrupt" in failed[0].detail["error"]
    assert c.client().find_version(c.model, "v2") is None
    assert c.alias("champion") == "v1"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_mlflow_backend_needs_a_tracking_uri_and_local_mirrors_nothing(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    with pytest.raises(ValidationError, match=r"needs retrain\.mlflow\.tracking_uri"):
        RetrainSettings(registry_backend="mlflow")
    local = Settings(environment="test", database={"url": db_url})
    assert registry_mirror.sync(local, sessions) == {}
