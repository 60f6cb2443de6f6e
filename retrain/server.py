"""A reference ONNX Runtime model server: serves the deployment spec and splits traffic.

It reads the spec the :class:`~retrain.deploy.FileTarget` writes, loads each arm's ONNX file
(checking its SHA-256 against the spec), routes each request to ``canary`` when
``crc32(request_id) % 100 < canary_weight`` (sticky per request id) and otherwise to ``stable``,
and returns :class:`~monitor.schemas.PredictionLog` objects that carry the arm, the version,
latency, the 64-d embedding and a PNG thumbnail, ready for the SDK or the store.

>>> route("req-1", 0), route("req-1", 100)
('stable', 'canary')
"""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import DriftwatchError
from monitor.imagestats import encode_png, image_stats
from monitor.schemas import PredictionLog, encode_array
from retrain.deploy import DeploymentSpec, FileTarget
from retrain.storage import fetch


def route(request_id: str, canary_weight: int) -> str:
    """The arm of ``request_id`` at ``canary_weight`` percent."""
    return "canary" if zlib.crc32(request_id.encode()) % 100 < canary_weight else "stable"


class ModelServer:
    """Serves the arms of a deployment spec file with ONNX Runtime."""

    def __init__(
        self,
        spec_path: Path | str,
        to_input: Callable[[np.ndarray], np.ndarray],
        threads: int = 1,
        s3_endpoint_url: str | None = None,
    ) -> None:
        self.target = FileTarget(spec_path)
        self.s3_endpoint_url = s3_endpoint_url
        self.to_input = to_input
        self.threads = threads
        self.spec: DeploymentSpec | None = None
        self._sessions: dict[str, Any] = {}
        self._mtime = -1.0

    def reload(self) -> DeploymentSpec:
        """Re-read the spec when the file changed; load any new arm."""
        from retrain.export import session

        mtime = self.target.path.stat().st_mtime if self.target.path.exists() else -1.0
        if self.spec is None or mtime != self._mtime:
            spec = self.target.read()
            if spec is None:
                raise DriftwatchError(f"no deployment spec at {self.target.path}")
            for arm in (spec.stable, spec.canary):
                if arm is not None and arm.sha256 not in self._sessions:
                    data = fetch(arm.url, arm.sha256, self.s3_endpoint_url)
                    self._sessions[arm.sha256] = session(data, self.threads)
            self.spec, self._mtime = spec, mtime
        return self.spec

    def predict(
        self,
        images: np.ndarray,
        request_ids: Sequence[str],
        labels: Sequence[int | None] | None = None,
        timestamp: datetime | None = None,
    ) -> list[PredictionLog]:
        """Serve ``images`` (N, H, W) uint8 one request at a time; one log per request."""
        from scipy.special import softmax

        from retrain.export import INPUT, OUTPUTS

        spec = self.reload()
        now = timestamp or datetime.now(UTC)
        x = self.to_input(images)
        logs = []
        for i, rid in enumerate(request_ids):
            arm = route(rid, spec.canary_weight) if spec.canary is not None else "stable"
            served = spec.canary if arm == "canary" and spec.canary is not None else spec.stable
            sess = self._sessions[served.sha256]
            t0 = time.perf_counter()
            logits, emb = sess.run(list(OUTPUTS), {INPUT: x[i : i + 1]})
            latency = (time.perf_counter() - t0) * 1000
            probs = softmax(logits[0].astype(np.float64))
            probs = probs / probs.sum()
            logs.append(
                PredictionLog(
                    model=spec.model,
                    model_version=served.version,
                    request_id=rid,
                    timestamp=now,
                    predicted_class=int(probs.argmax()),
                    probabilities=probs.tolist(),
                    embedding=encode_array(emb[0].astype(np.float32), "float32"),
                    pixel_stats=image_stats(images[i]),
                    thumbnail=base64.b64encode(encode_png(images[i])).decode(),
                    latency_ms=latency,
                    arm=arm,
                    label=None if labels is None else labels[i],
                )
            )
        return logs
