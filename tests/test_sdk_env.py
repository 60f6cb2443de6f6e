"""The SDK takes torch tensors (detached, moved to the CPU), reads its configuration and the
rollout platform's revision from the environment, and carries tags to the broker."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch

from driftwatch_sdk import PredictionLogger, encode_prediction, platform_arm, platform_revision
from driftwatch_sdk.environment import env_tags, kafka_from_env
from driftwatch_sdk.imagestats import STAT_NAMES, batch_stats
from ingest.fastpath import fast_rows
from monitor.schemas import Limits, PredictionLog, decode_array, parse_message
from monitor.settings import KafkaSettings
from monitor.store.ingest_repo import prediction_row
from tests.test_ingest_worker import read_topic


def test_tensors_with_grad_are_detached_and_encoded_like_arrays() -> None:
    logits = torch.randn(1, 5, requires_grad=True)
    probs = torch.softmax(logits * 2, dim=1)[0]  # carries a grad_fn: .numpy() alone raises
    emb = torch.randn(16, requires_grad=True)
    raw = encode_prediction("m", "v1", "r", probs, embedding=emb, embedding_dtype="float32")
    log = PredictionLog.model_validate_json(raw)
    assert log.probabilities == pytest.approx(probs.detach().numpy().tolist(), abs=1e-7)
    assert log.predicted_class == int(probs.argmax())
    assert log.embedding is not None
    np.testing.assert_array_equal(decode_array(log.embedding), emb.detach().numpy())


def test_platform_revisions_and_arms() -> None:
    assert platform_revision({}) is None
    argo = {"ROLLOUTS_POD_TEMPLATE_HASH": "6d4f9c8b7", "K_REVISION": "ignored"}
    assert platform_revision(argo) == ("argo-rollouts", "6d4f9c8b7")
    assert platform_revision({"K_REVISION": "digits-00002"}) == ("knative", "digits-00002")
    assert platform_revision({"MLSERVER_MODEL_NAME": "digits-b"}) == ("seldon", "digits-b")
    assert platform_revision({"DRIFTWATCH_REVISION": "x", **argo}) == ("custom", "x")
    assert platform_arm(argo) is None  # Argo's controller knows which hash is stable, not the pod
    assert platform_arm({"PREDICTOR_ID": "canary"}) == "canary"
    assert platform_arm({"DRIFTWATCH_ARM": "Stable", "PREDICTOR_ID": "canary"}) == "stable"
    with pytest.raises(ValueError, match="DRIFTWATCH_ARM"):
        platform_arm({"DRIFTWATCH_ARM": "blue"})
    assert env_tags({"DRIFTWATCH_TAGS": '{"site": "lyon"}', **argo}) == {
        "site": "lyon",
        "revision": "6d4f9c8b7",
        "platform": "argo-rollouts",
    }
    with pytest.raises(ValueError, match="key=value"):
        env_tags({"DRIFTWATCH_TAGS": "site"})


def test_kafka_settings_use_the_server_variable_names() -> None:
    env = {
        "DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS": "a:9092, b:9093",
        "DRIFTWATCH_KAFKA__PREDICTIONS_TOPIC": "preds",
        "DRIFTWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "DRIFTWATCH_KAFKA__SASL_PASSWORD": "s3cret",
    }
    assert kafka_from_env(env) == {
        "bootstrap_servers": ["a:9092", "b:9093"],
        "predictions_topic": "preds",
        "client_config": {"security_protocol": "SASL_SSL", "sasl_plain_password": "s3cret"},
    }


def test_from_env_logs_tensors_with_tags_and_revision_to_the_broker(
    make_topics: Callable[..., KafkaSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = make_topics()
    monkeypatch.setenv("DRIFTWATCH_MODEL", "digits")
    monkeypatch.setenv("DRIFTWATCH_MODEL_VERSION", "v7")
    monkeypatch.setenv("DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS", ",".join(kafka.bootstrap_servers))
    monkeypatch.setenv("DRIFTWATCH_KAFKA__PREDICTIONS_TOPIC", kafka.predictions_topic)
    monkeypatch.setenv("DRIFTWATCH_KAFKA__LABELS_TOPIC", kafka.labels_topic)
    monkeypatch.setenv("DRIFTWATCH_TAGS", "site=lyon")
    monkeypatch.setenv("K_REVISION", "digits-00003")
    images = torch.randint(0, 256, (4, 10, 10, 3), dtype=torch.uint8)
    probs = torch.softmax(torch.randn(4, 3, requires_grad=True), dim=1)
    with PredictionLogger.from_env(tags={"camera": "dock-3"}) as logger:
        ids = logger.log_batch(probs, images=images, embeddings=torch.randn(4, 6).requires_grad_())
        one = logger.log(probs[0], image=images[0], tags={"camera": "gate"})
    assert (logger.sent, logger.dropped, logger.failed) == (5, 0, 0)
    logs = [
        parse_message(r.value, PredictionLog, Limits(), 100_000)
        for r in read_topic(kafka, kafka.predictions_topic, 5)
    ]
    assert [log.request_id for log in logs] == [*ids, one]
    base = {"site": "lyon", "revision": "digits-00003", "platform": "knative"}
    assert [log.tags for log in logs] == [{**base, "camera": "dock-3"}] * 4 + [
        {**base, "camera": "gate"}
    ]
    assert all(log.model_version == "v7" and log.arm is None for log in logs)
    expected = batch_stats(images.numpy())
    assert logs[2].pixel_stats == pytest.approx(dict(zip(STAT_NAMES, expected[2], strict=True)))


def test_from_env_without_a_model_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTWATCH_MODEL", raising=False)
    with pytest.raises(ValueError, match="DRIFTWATCH_MODEL"):
        PredictionLogger.from_env()


def test_bad_tags_drop_the_log_and_count_it() -> None:
    logger = PredictionLogger("m", "v1", bootstrap_servers=["127.0.0.1:1"])
    assert logger.log([0.5, 0.5], tags={"bad key": "x"}) is None
    assert logger.dropped == 1
    assert "tags" not in json.loads(encode_prediction("m", "v", "r", [0.5, 0.5], tags={}))
    logger.close(timeout=1)


def test_both_ingest_lanes_write_tags_alike() -> None:
    tags = {"camera": "dock-3", "site": "lyon"}
    raw = encode_prediction("digits", "v1", "r", [0.5, 0.5], tags=tags)
    rows, slow = fast_rows([raw], Limits())
    assert slow == [] and json.loads(rows[0]["tags"]) == tags
    assert prediction_row(PredictionLog.model_validate_json(raw))["tags"] == rows[0]["tags"]
    doc = {**json.loads(raw), "tags": {"bad key": "x"}}
    assert fast_rows([json.dumps(doc).encode()], Limits())[1] == [0]  # left to the slow lane
