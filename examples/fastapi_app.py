"""A FastAPI model server that logs every prediction to Driftwatch.

Configured by the environment (``PredictionLogger.from_env``): ``DRIFTWATCH_MODEL``,
``DRIFTWATCH_MODEL_VERSION``, ``DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS``, optional
``DRIFTWATCH_TAGS`` and the platform's revision variable. Run:
``uvicorn examples.fastapi_app:app``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI, Request
from pydantic import BaseModel

from driftwatch_sdk import PredictionLogger
from examples.classifier import TinyClassifier


class PredictRequest(BaseModel):
    pixels: list[list[int]]  # one 8x8 grey image, 0-255
    camera: str | None = None  # a segment: logged as a tag


class PredictResponse(BaseModel):
    request_id: str | None
    predicted_class: int
    confidence: float


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.model = TinyClassifier().eval()
    app.state.logger = PredictionLogger.from_env()
    yield
    app.state.logger.close()  # flushes what is queued


app = FastAPI(lifespan=lifespan)


@app.post("/predict", response_model=PredictResponse)
def predict(body: PredictRequest, request: Request) -> Any:
    start = time.perf_counter()
    image = torch.tensor(body.pixels, dtype=torch.uint8)
    with torch.no_grad():
        probs, embedding = request.app.state.model(image[None])
    request_id = request.app.state.logger.log(
        probs[0],
        embedding=embedding[0],
        image=image,
        latency_ms=(time.perf_counter() - start) * 1000,
        tags={"camera": body.camera} if body.camera else None,
    )
    return PredictResponse(
        request_id=request_id,
        predicted_class=int(probs[0].argmax()),
        confidence=float(probs[0].max()),
    )
