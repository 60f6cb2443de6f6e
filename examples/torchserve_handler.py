"""A TorchServe custom handler (``torch-model-archiver --handler torchserve_handler.py``)
that logs each batch to Driftwatch.

TorchServe calls the module-level ``handle(data, context)``: ``data`` is a list of requests
(``{"body": bytes}`` or ``{"data": bytes}``), ``context.system_properties`` has ``model_dir``
and ``context.manifest["model"]`` the model's name and version. The logger reads Kafka and
tags from the environment; model name and version default to the manifest's.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import torch

from driftwatch_sdk import PredictionLogger
from examples.classifier import TinyClassifier


class DriftwatchHandler:
    """initialize / preprocess / inference / postprocess, as TorchServe's BaseHandler."""

    def __init__(self) -> None:
        self.model: TinyClassifier | None = None
        self.logger: PredictionLogger | None = None

    def initialize(self, context: Any) -> None:
        manifest = context.manifest.get("model", {})
        self.model = TinyClassifier().eval()
        self.logger = PredictionLogger.from_env(
            os.environ.get("DRIFTWATCH_MODEL") or manifest.get("modelName"),
            os.environ.get("DRIFTWATCH_MODEL_VERSION") or manifest.get("modelVersion"),
        )

    def preprocess(self, data: list[dict[str, Any]]) -> torch.Tensor:
        images = [json.loads(row.get("body") or row.get("data") or b"null") for row in data]
        return torch.tensor(images, dtype=torch.uint8)

    def inference(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.model is not None
        with torch.no_grad():
            return self.model(images)  # type: ignore[no-any-return]

    def postprocess(self, probs: torch.Tensor) -> list[dict[str, Any]]:
        return [{"predicted_class": int(p.argmax()), "confidence": float(p.max())} for p in probs]

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[dict[str, Any]]:
        start = time.perf_counter()
        images = self.preprocess(data)
        probs, embeddings = self.inference(images)
        out = self.postprocess(probs)
        assert self.logger is not None
        latency = (time.perf_counter() - start) * 1000 / len(out)
        ids = self.logger.log_batch(
            probs, embeddings=embeddings, images=images, latency_ms=[latency] * len(out)
        )
        for row, request_id in zip(out, ids, strict=False):
            row["request_id"] = request_id
        return out


_service = DriftwatchHandler()


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[dict[str, Any]] | None:
    """TorchServe's entry point (``None`` data is its warm-up call)."""
    if _service.model is None:
        _service.initialize(context)
    return None if data is None else _service.handle(data, context)
