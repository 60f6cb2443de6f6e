"""The examples run and their logs reach the broker in the wire schema.

TorchServe (a Java frontend) and Triton (a C++ server) cannot run here: the TorchServe handler
is called as TorchServe calls it (``handle(data, context)`` with a context carrying
``system_properties`` and ``manifest``), and the Triton ``model.py`` runs against a minimal
stand-in for ``triton_python_backend_utils`` (Tensor, InferenceResponse,
get_input_tensor_by_name) installed in ``sys.modules`` by this test.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from monitor.schemas import Limits, PredictionLog, parse_message
from monitor.settings import KafkaSettings
from tests.test_ingest_worker import read_topic


@pytest.fixture
def kafka_env(
    make_topics: Callable[..., KafkaSettings], monkeypatch: pytest.MonkeyPatch
) -> KafkaSettings:
    kafka = make_topics()
    monkeypatch.setenv("DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS", ",".join(kafka.bootstrap_servers))
    monkeypatch.setenv("DRIFTWATCH_KAFKA__PREDICTIONS_TOPIC", kafka.predictions_topic)
    monkeypatch.setenv("DRIFTWATCH_KAFKA__LABELS_TOPIC", kafka.labels_topic)
    monkeypatch.setenv("ROLLOUTS_POD_TEMPLATE_HASH", "5f7c9d")
    return kafka


def _logs(kafka: KafkaSettings, n: int) -> list[PredictionLog]:
    records = read_topic(kafka, kafka.predictions_topic, n)
    assert len(records) == n
    return [parse_message(r.value, PredictionLog, Limits(), 100_000) for r in records]


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 8, 8), dtype=np.uint8)


def test_fastapi_app(kafka_env: KafkaSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_MODEL", "digits")
    monkeypatch.setenv("DRIFTWATCH_MODEL_VERSION", "v2")
    from examples.fastapi_app import app

    images = _images(3)
    with TestClient(app) as client:
        answers = [
            client.post("/predict", json={"pixels": img.tolist(), "camera": f"c{i}"}).json()
            for i, img in enumerate(images)
        ]
    logs = _logs(kafka_env, 3)
    assert [log.request_id for log in logs] == [a["request_id"] for a in answers]
    assert [log.predicted_class for log in logs] == [a["predicted_class"] for a in answers]
    assert [(log.tags or {}).get("camera") for log in logs] == ["c0", "c1", "c2"]
    assert all((log.tags or {}).get("revision") == "5f7c9d" for log in logs)
    assert all(log.embedding is not None and log.latency_ms is not None for log in logs)


def test_torchserve_handler(kafka_env: KafkaSettings) -> None:
    handler = importlib.import_module("examples.torchserve_handler")
    context = types.SimpleNamespace(
        system_properties={"model_dir": "/tmp", "gpu_id": None},
        manifest={"model": {"modelName": "digits", "modelVersion": "3.0"}},
    )
    images = _images(4)
    assert handler.handle(None, context) is None  # warm-up
    out = handler.handle([{"body": json.dumps(img.tolist()).encode()} for img in images], context)
    handler._service.logger.close()
    logs = _logs(kafka_env, 4)
    assert [log.request_id for log in logs] == [row["request_id"] for row in out]
    assert {(log.model, log.model_version) for log in logs} == {("digits", "3.0")}
    assert [log.pixel_stats["width"] for log in logs if log.pixel_stats] == [8.0] * 4


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class _Response:
    def __init__(self, output_tensors: list[_Tensor]) -> None:
        self.output_tensors = output_tensors


class _Request:
    def __init__(self, *inputs: _Tensor) -> None:
        self.inputs = {t.name(): t for t in inputs}


@pytest.fixture
def pb_utils(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = _Tensor  # type: ignore[attr-defined]
    module.InferenceResponse = _Response  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: request.inputs.get(name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    monkeypatch.delitem(sys.modules, "examples.triton_model", raising=False)
    yield module


def test_triton_python_backend_model(kafka_env: KafkaSettings, pb_utils: Any) -> None:
    from examples.triton_model import TritonPythonModel

    model = TritonPythonModel()
    config = {"name": "digits", "input": [{"name": "IMAGE", "data_type": "TYPE_UINT8"}]}
    model.initialize(
        {"model_config": json.dumps(config), "model_name": "digits", "model_version": "1"}
    )
    batches = [_images(2), _images(3)]
    responses = model.execute([_Request(_Tensor("IMAGE", b)) for b in batches])
    model.finalize()
    probs = [r.output_tensors[0].as_numpy() for r in responses]
    assert [p.shape for p in probs] == [(2, 10), (3, 10)]
    logs = _logs(kafka_env, 5)
    assert [log.predicted_class for log in logs] == np.concatenate(probs).argmax(axis=1).tolist()
    assert {(log.model, log.model_version) for log in logs} == {("digits", "1")}
    assert {(log.tags or {}).get("platform") for log in logs} == {"argo-rollouts"}
