"""A Triton Inference Server Python-backend ``model.py`` that logs each request to Driftwatch.

Deploy as ``<repository>/<model>/1/model.py`` with inputs ``IMAGE`` (UINT8, [-1, 8, 8]) and
outputs ``PROBABILITIES`` (FP32, [-1, 10]). Triton passes the model's name and version in
``initialize(args)``; the logger reads Kafka and tags from the environment.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

from driftwatch_sdk import PredictionLogger
from examples.classifier import TinyClassifier


class TritonPythonModel:
    """Triton's Python-backend interface: initialize, execute, finalize."""

    def initialize(self, args: dict[str, str]) -> None:
        self.config = json.loads(args["model_config"])
        self.model = TinyClassifier().eval()
        self.logger = PredictionLogger.from_env(args["model_name"], args["model_version"])

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            start = time.perf_counter()
            images = torch.from_numpy(
                np.ascontiguousarray(pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy())
            )
            with torch.no_grad():
                probs, embeddings = self.model(images)
            latency = (time.perf_counter() - start) * 1000 / len(images)
            self.logger.log_batch(
                probs, embeddings=embeddings, images=images, latency_ms=[latency] * len(images)
            )
            out = pb_utils.Tensor("PROBABILITIES", probs.numpy().astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses

    def finalize(self) -> None:
        self.logger.close()
