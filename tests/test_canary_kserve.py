"""Driftwatch's own canary controller (retrain/rollout.py) driving a KServe InferenceService
through the Kubernetes API (tests/k8s_api.py enforces the API's rules), end to end: registry,
rollout steps judged on logged traffic, promotion, and a rollback by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from monitor.schemas import PredictionLog
from monitor.settings import RetrainSettings, Settings
from monitor.settings.targets import KServeTargetSettings, KubernetesApiSettings
from monitor.store.db import unit_of_work
from monitor.store.retrain_tables import Rollout
from retrain import registry, rollout
from retrain.deploy import target_from_settings
from retrain.digits import train_holdout
from retrain.pipeline import publish_version, register_baseline
from retrain.recipes import digits_input, train_baseline
from tests.k8s_api import KubeApiServer, inference_service
from tests.test_rollout import _emit, _logs

torch.set_num_threads(2)
ISVC = ("serving.kserve.io", "v1beta1", "ml", "inferenceservices", "digits")
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def api() -> Iterator[KubeApiServer]:
    with KubeApiServer() as srv:
        srv.api.create(
            *ISVC[:2], ISVC[3], inference_service("ml", "digits", "s3://models/digits/v1")
        )
        yield srv


@pytest.fixture
def started(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    api: KubeApiServer,
) -> tuple[Settings, int, torch.nn.Module]:
    """v1 promoted and served by the InferenceService; v2's rollout started at 5%; the net."""
    settings = settings_for(
        db_url,
        retrain=RetrainSettings(
            registry_dir=tmp_path / "registry",
            deployment_spec_path=tmp_path / "deploy.json",
            step_min_logs=60,
            min_arm_labels=50,
            kubernetes=KubernetesApiSettings(host=api.url, token=api.api.token),
            kserve=[
                KServeTargetSettings(
                    model="digits", namespace="ml", name="digits",
                    storage_uri="s3://models/{model}/{version}",
                )
            ],
        ),
    )  # fmt: skip
    _, hold = train_holdout(seed=0)
    net = train_baseline()
    register_baseline(settings, sessions, "digits", "v1", net, hold.images, hold.labels)
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    x = digits_input(hold.images[:300])
    with unit_of_work(sessions) as s:
        v2 = publish_version(
            s, store, "digits", "v2", net, x, x, hold.labels[:300], settings, parent_version="v1"
        )
        ro = rollout.start(s, settings, store, target_from_settings(settings.retrain), v2)
        return settings, ro.id, net


def _tick(settings: Settings, sessions: sessionmaker[Session], rollout_id: int) -> str:
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    with unit_of_work(sessions) as s:
        ro = s.get(Rollout, rollout_id)
        assert ro is not None
        target = target_from_settings(settings.retrain)
        return rollout.tick(s, settings, store, target, ro, datetime.now(UTC))


def _percent(api: KubeApiServer) -> int | None:
    return api.api.get(ISVC)["spec"]["predictor"].get("canaryTrafficPercent")  # type: ignore[no-any-return]


def test_kserve_follows_the_controller_through_promotion_and_a_manual_rollback(
    started: tuple[Settings, int, torch.nn.Module],
    sessions: sessionmaker[Session],
    api: KubeApiServer,
    make_log: Callable[..., PredictionLog],
) -> None:
    settings, rollout_id, net = started
    percents, outcomes = [_percent(api)], []
    for _ in settings.retrain.rollout_steps:
        _emit(
            sessions,
            _logs(make_log, "v1", "stable", 100, acc=0.8)
            + _logs(make_log, "v2", "canary", 80, acc=0.9),
        )
        outcomes.append(_tick(settings, sessions, rollout_id))
        percents.append(_percent(api))
    assert outcomes == ["advance", "advance", "advance", "promote"]
    assert percents == [5, 25, 50, 100, None]  # promoted: the field removed
    predictor = api.api.get(ISVC)["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == "s3://models/digits/v2"
    assert api.api.get(ISVC)["metadata"]["annotations"]["driftwatch.io/stable-version"] == "v2"
    assert {p.content_type for p in api.patches()} == {"application/merge-patch+json"}
    _then_a_rollback_by_hand_pins_the_previous_revision(settings, sessions, api, net)


def _then_a_rollback_by_hand_pins_the_previous_revision(
    settings: Settings, sessions: sessionmaker[Session], api: KubeApiServer, net: torch.nn.Module
) -> None:
    """v3 canaried beside the promoted v2, then rolled back by hand while another writer
    labels the InferenceService between Driftwatch's read and its patch."""
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    _, hold = train_holdout(seed=0)
    x = digits_input(hold.images[:300])
    with unit_of_work(sessions) as s:
        v3 = publish_version(
            s, store, "digits", "v3", net, x, x, hold.labels[:300], settings, parent_version="v2"
        )
        rollout_id = rollout.start(
            s, settings, store, target_from_settings(settings.retrain), v3
        ).id
    assert _percent(api) == 5
    assert api.api.get(ISVC)["spec"]["predictor"]["model"]["storageUri"] == "s3://models/digits/v3"

    def other_writer() -> None:
        api.api.before_patch.clear()
        api.api.write(ISVC, {"metadata": {"labels": {"team": "vision"}}})

    api.api.before_patch.append(other_writer)
    with unit_of_work(sessions) as s:
        rollout.roll_back(s, settings, rollout_id, "on-call: latency")
    assert _percent(api) == 0  # KServe serves the previous rolled-out revision (v2) alone
    assert [p.status for p in api.patches()][-2:] == [409, 200]
    assert api.api.get(ISVC)["metadata"]["labels"] == {"team": "vision"}
    with unit_of_work(sessions) as s:
        assert registry.get_version(s, "digits", "v3").state == "rolled_back"
