"""The KServe and Seldon Core 2 targets, through the official client, against tests/k8s_api.py
(a local server enforcing the API's auth, RBAC, content type, resourceVersion and CRD rules)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitor.settings import RetrainSettings
from monitor.settings.targets import (
    KServeTargetSettings,
    KubernetesApiSettings,
    SeldonTargetSettings,
)
from retrain.deploy import ArmSpec, DeployError, DeploymentSpec, target_from_settings
from retrain.kube import Conflicted, CustomObjects
from retrain.targets_k8s import KServeTarget, SeldonExperimentTarget
from tests.k8s_api import KubeApiServer, experiment, inference_service

ISVC = ("serving.kserve.io", "v1beta1", "ml", "inferenceservices", "digits")
EXPERIMENT = ("mlops.seldon.io", "v1alpha1", "ml", "experiments", "digits-canary")
V1 = ArmSpec("v1", "s3://registry/digits/v1/model.onnx", "a1")
V2 = ArmSpec("v2", "s3://registry/digits/v2/model.onnx", "b2")
URI = "s3://models/{model}/{version}"


def canary(weight: int) -> DeploymentSpec:
    return DeploymentSpec("digits", V1, V2, weight, rollout_id=7)


def stable(arm: ArmSpec) -> DeploymentSpec:
    return DeploymentSpec("digits", arm, rollout_id=7)


@pytest.fixture
def server() -> Iterator[KubeApiServer]:
    with KubeApiServer() as srv:
        srv.api.create(
            *ISVC[:2], ISVC[3], inference_service("ml", "digits", "s3://models/digits/v1")
        )
        srv.api.create(
            *EXPERIMENT[:2], EXPERIMENT[3], experiment("ml", "digits-canary", "digits-v1")
        )
        yield srv


def api_settings(server: KubeApiServer, **extra: Any) -> KubernetesApiSettings:
    return KubernetesApiSettings(host=server.url, token=server.api.token, **extra)


def kserve(server: KubeApiServer, **extra: Any) -> KServeTarget:
    objects = CustomObjects(api_settings(server, **extra))
    return KServeTarget(
        objects,
        KServeTargetSettings(model="digits", namespace="ml", name="digits", storage_uri=URI),
    )


def predictor(server: KubeApiServer) -> dict[str, Any]:
    return server.api.get(ISVC)["spec"]["predictor"]  # type: ignore[no-any-return]


def test_kserve_canary_raises_the_percent_then_promotes_by_removing_it(
    server: KubeApiServer,
) -> None:
    target = kserve(server)
    seen = []
    for weight in (5, 25, 50, 100):
        target.publish(canary(weight))
        p = predictor(server)
        seen.append((p["canaryTrafficPercent"], p["model"]["storageUri"]))
    assert seen == [(w, "s3://models/digits/v2") for w in (5, 25, 50, 100)]
    target.publish(stable(V2))  # promote: KServe rolls the candidate out at 100%
    isvc = server.api.get(ISVC)
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert isvc["spec"]["predictor"]["model"] == {
        "modelFormat": {"name": "onnx"},
        "storageUri": "s3://models/digits/v2",
    }
    notes = isvc["metadata"]["annotations"]
    assert notes == {"driftwatch.io/stable-version": "v2", "driftwatch.io/rollout-id": "7"}
    assert isvc["metadata"]["generation"] == 6  # each patch changed the spec once
    # Every PATCH was a merge patch guarded by the resourceVersion read just before it.
    patches = server.patches()
    assert len(patches) == 5 and all(p.status == 200 for p in patches)
    assert {p.content_type for p in patches} == {"application/merge-patch+json"}
    assert all(p.body["metadata"]["resourceVersion"] for p in patches)
    target.publish(stable(V2))  # a republish changes nothing: no PATCH sent
    assert len(server.patches()) == 5


def test_kserve_rollback_sets_the_percent_to_zero_and_keeps_the_previous_revision(
    server: KubeApiServer,
) -> None:
    target = kserve(server)
    target.publish(canary(25))
    target.publish(stable(V1))
    p = predictor(server)
    # KServe pins all traffic to the previous rolled-out revision (v1) at 0.
    assert p["canaryTrafficPercent"] == 0 and p["model"]["storageUri"] == "s3://models/digits/v2"
    assert server.api.get(ISVC)["metadata"]["annotations"]["driftwatch.io/stable-version"] == "v1"
    before = len(server.patches())
    target.publish(stable(V1))
    assert len(server.patches()) == before
    target.publish(DeploymentSpec("digits", V1, ArmSpec("v3", "s3://x", "c3"), 5))  # next canary
    assert predictor(server)["canaryTrafficPercent"] == 5
    assert predictor(server)["model"]["storageUri"] == "s3://models/digits/v3"


def test_a_concurrent_change_gets_409_and_the_patch_is_recomputed(server: KubeApiServer) -> None:
    def other_writer() -> None:
        server.api.before_patch.clear()
        server.api.write(ISVC, {"metadata": {"labels": {"team": "vision"}}})

    server.api.before_patch.append(other_writer)
    kserve(server).publish(canary(5))
    assert [p.status for p in server.patches()] == [409, 200]
    isvc = server.api.get(ISVC)
    assert isvc["metadata"]["labels"] == {"team": "vision"}  # the other change survives
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 5


def test_an_object_that_keeps_changing_fails_after_the_bounded_retries(
    server: KubeApiServer,
) -> None:
    server.api.before_patch.append(
        lambda: server.api.write(ISVC, {"metadata": {"labels": {"n": "x"}}})
    )
    with pytest.raises(Conflicted, match=r"InferenceService ml/digits .* kept changing: 3 patches"):
        kserve(server, conflict_retries=2).publish(canary(5))
    assert [p.status for p in server.patches()] == [409, 409, 409]


def test_rbac_denial_is_a_deploy_error_naming_the_resource_and_no_token(
    server: KubeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.api.granted.discard((server.api.user, "patch", "inferenceservices"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeployError) as err:
        kserve(server).publish(canary(5))
    text = str(err.value)
    assert text.startswith("cannot patch InferenceService ml/digits (serving.kserve.io/v1beta1)")
    assert "403 Forbidden" in text and "grant patch on inferenceservices.serving.kserve.io" in text
    assert 'cannot patch resource "inferenceservices"' in text  # the API's own Status message
    assert server.api.token not in text and server.api.token not in caplog.text
    assert predictor(server).get("canaryTrafficPercent") is None


def test_unknown_object_and_bad_token_are_named_errors(server: KubeApiServer) -> None:
    objects = CustomObjects(api_settings(server))
    missing = KServeTarget(
        objects, KServeTargetSettings(model="digits", namespace="ml", name="nope")
    )
    with pytest.raises(DeployError, match=r"cannot get InferenceService ml/nope .*404 Not Found"):
        missing.publish(canary(5))
    wrong = CustomObjects(KubernetesApiSettings(host=server.url, token="not-the-token"))
    target = KServeTarget(
        wrong, KServeTargetSettings(model="digits", namespace="ml", name="digits")
    )
    with pytest.raises(DeployError, match="401 Unauthorized") as err:
        target.publish(canary(5))
    assert "not-the-token" not in str(err.value)
    down = CustomObjects(
        KubernetesApiSettings(host="http://127.0.0.1:9", token="t", timeout_seconds=2)
    )
    with pytest.raises(DeployError, match="unreachable"):
        KServeTarget(
            down, KServeTargetSettings(model="digits", namespace="ml", name="digits")
        ).publish(canary(5))


def test_the_server_refuses_other_patch_types_the_client_sends_merge_patch(
    server: KubeApiServer,
) -> None:
    url = f"{server.url}/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/digits"
    auth = {"Authorization": f"Bearer {server.api.token}"}
    for ctype in (
        "application/json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
    ):
        resp = httpx.patch(url, content=b"{}", headers={**auth, "Content-Type": ctype})
        assert resp.status_code == 415 and resp.json()["reason"] == "UnsupportedMediaType"
    kserve(server).publish(canary(5))
    assert server.patches()[-1].content_type == "application/merge-patch+json"
    assert server.patches()[-1].status == 200


def test_other_models_specs_pass_by_and_invalid_percent_is_refused(server: KubeApiServer) -> None:
    target = kserve(server)
    target.publish(DeploymentSpec("letters", V1, V2, 50))
    assert server.patches() == []
    with pytest.raises(DeployError, match=r"422.*canaryTrafficPercent: Invalid value: 150"):
        target.publish(canary(150))


def seldon(server: KubeApiServer) -> SeldonExperimentTarget:
    settings = SeldonTargetSettings(model="digits", namespace="ml", name="digits-canary")
    return SeldonExperimentTarget(CustomObjects(api_settings(server)), settings)


def weights(server: KubeApiServer) -> dict[str, int]:
    return {c["name"]: c["weight"] for c in server.api.get(EXPERIMENT)["spec"]["candidates"]}


def test_seldon_experiment_weights_move_through_the_steps_and_promote(
    server: KubeApiServer,
) -> None:
    target = seldon(server)
    seen = []
    for weight in (5, 25, 50, 100):
        target.publish(canary(weight))
        seen.append(weights(server))
    assert seen == [{"digits-v1": 100 - w, "digits-v2": w} for w in (5, 25, 50, 100)]
    target.publish(stable(V2))
    assert weights(server) == {"digits-v2": 100, "digits-v1": 0}
    assert server.api.get(EXPERIMENT)["spec"]["default"] == "digits-v1"  # its endpoint carries it
    assert {p.content_type for p in server.patches()} == {"application/merge-patch+json"}


def test_seldon_rollback_gives_the_stable_model_everything(server: KubeApiServer) -> None:
    target = seldon(server)
    target.publish(canary(25))
    target.publish(stable(V1))
    assert weights(server) == {"digits-v1": 100, "digits-v2": 0}
    server.api.granted.discard((server.api.user, "patch", "experiments"))
    with pytest.raises(
        DeployError,
        match=r"cannot patch Experiment ml/digits-canary \(mlops.seldon.io/v1alpha1\).*403",
    ):
        target.publish(canary(5))


def test_a_kubeconfig_reaches_the_api_and_settings_build_the_targets(
    server: KubeApiServer, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ml",
        "clusters": [{"name": "local", "cluster": {"server": server.url}}],
        "users": [{"name": "driftwatch", "user": {"token": server.api.token}}],
        "contexts": [{"name": "ml", "context": {"cluster": "local", "user": "driftwatch"}}],
    }))  # fmt: skip
    settings = RetrainSettings(
        deployment_spec_path=tmp_path / "deploy.json",
        kubernetes=KubernetesApiSettings(kubeconfig=kubeconfig, context="ml"),
        kserve=[
            KServeTargetSettings(model="digits", namespace="ml", name="digits", storage_uri=URI)
        ],
        seldon=[SeldonTargetSettings(model="digits", namespace="ml", name="digits-canary")],
    )
    target_from_settings(settings).publish(canary(5))
    assert predictor(server)["canaryTrafficPercent"] == 5
    assert weights(server) == {"digits-v1": 95, "digits-v2": 5}
    assert (tmp_path / "deploy.json").is_file()  # the file target still writes the spec


def test_settings_refuse_bad_templates_and_mixed_sources() -> None:
    with pytest.raises(ValueError, match=r"may use only \{model\}"):
        KServeTargetSettings(
            model="d", namespace="ml", name="d", storage_uri="s3://{bucket}/{version}"
        )
    with pytest.raises(ValueError, match="host or in_cluster"):
        KubernetesApiSettings(host="https://k8s", in_cluster=True)
    with pytest.raises(ValueError, match="token needs host"):
        KubernetesApiSettings(token="t")
