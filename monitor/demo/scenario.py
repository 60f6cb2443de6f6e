"""A small drift-and-canary run for trying the dashboards and the status page on real data.

:func:`scenario_logs` makes seeded prediction logs of one model: a clean reference period, a
clean window, a darker "camera" (brightness -30%) for two windows, and a canary period where
``v1`` (arm ``stable``) and ``v2`` (arm ``canary``) serve side by side, with labels and
latencies. :func:`run_monitor` then does what the evaluator does: fit the reference profile from
the store, close windows, evaluate them and apply the policy. Tests send the logs through Kafka
and the ingest worker (or straight into the store) and check every panel against the result.

>>> from datetime import UTC, datetime
>>> logs = scenario_logs(datetime(2026, 11, 22, tzinfo=UTC), per_window=100)
>>> len(logs), sorted({(log.model_version, log.arm) for log in logs}, key=str)
(700, [('v1', 'stable'), ('v1', None), ('v2', 'canary')])
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine

from monitor.batch import LogBatch
from monitor.detectors.simulate import synthetic_batch
from monitor.imagestats import STAT_NAMES
from monitor.profiles import fit_profile_from_store
from monitor.scheduler import Evaluator
from monitor.schemas import PredictionLog, encode_array
from monitor.settings import Settings
from monitor.store.db import session_factory, unit_of_work
from monitor.windows import close_windows

MODEL = "digits"


def _logs(
    batch: LogBatch,
    start: datetime,
    prefix: str,
    version: str,
    arm: str | None,
    rng: np.random.Generator,
    accuracy: float,
    latency_ms: float,
) -> list[PredictionLog]:
    assert batch.embeddings is not None and batch.pixel is not None
    out = []
    for i in range(len(batch)):
        predicted = int(batch.predicted[i])
        label = predicted if rng.uniform() < accuracy else (predicted + 1) % batch.n_classes
        values: dict[str, Any] = {
            "model": MODEL,
            "model_version": version,
            "request_id": f"{prefix}-{i}",
            "timestamp": start + timedelta(seconds=i * 0.5),
            "predicted_class": predicted,
            "probabilities": (batch.probs[i] / batch.probs[i].sum()).tolist(),
            "embedding": encode_array(batch.embeddings[i], "float16"),
            "pixel_stats": dict(zip(STAT_NAMES, map(float, batch.pixel[i]), strict=True)),
            "latency_ms": float(rng.gamma(4.0, latency_ms / 4.0)),
            "label": label,
        }
        if arm is not None:
            values["arm"] = arm
        out.append(PredictionLog.model_validate(values))
    return out


def scenario_logs(t0: datetime, per_window: int = 300, dim: int = 32) -> list[PredictionLog]:
    """The run's logs, oldest first: 2 reference windows, 1 clean, 2 dark, 1 stable + 1 canary."""

    rng = np.random.default_rng(7)
    step = timedelta(seconds=per_window)
    plan: list[tuple[str, datetime, dict[str, Any], str, str | None, float, float]] = [
        # (name, start, batch kwargs, version, arm, accuracy, latency)
        ("ref", t0, {"n": 2 * per_window, "seed": 1}, "v1", None, 0.95, 20.0),
        ("clean", t0 + 2 * step, {"n": per_window, "seed": 3}, "v1", None, 0.95, 20.0),
        (
            "dark",
            t0 + 3 * step,
            {"n": 2 * per_window, "seed": 4, "brightness": -0.3},
            "v1",
            None,
            0.80,
            21.0,
        ),
        (
            "stable",
            t0 + 5 * step,
            {"n": per_window, "seed": 5, "brightness": -0.3},
            "v1",
            "stable",
            0.80,
            21.0,
        ),
        (
            "canary",
            t0 + 5 * step,
            {"n": per_window, "seed": 6, "brightness": -0.3, "temperature": 0.8},
            "v2",
            "canary",
            0.93,
            12.0,
        ),
    ]
    logs: list[PredictionLog] = []
    for name, start, kwargs, version, arm, accuracy, latency in plan:
        batch = synthetic_batch(kwargs.pop("n"), dim=dim, **kwargs)
        logs += _logs(batch, start, name, version, arm, rng, accuracy, latency)
    return logs


def run_monitor(engine: Engine, settings: Settings, t0: datetime, per_window: int = 300) -> Any:
    """Fit and activate the v1 reference on the reference period (logs without arm), then run
    one tick of the real evaluator (evaluate the closed windows, apply the policy, deliver
    alerts).
    Returns the evaluator's :class:`~monitor.scheduler.TickReport`."""

    end = t0 + timedelta(seconds=per_window)  # ref logs are 0.5 s apart: 2 windows' worth
    with unit_of_work(session_factory(engine)) as s:
        fit_profile_from_store(
            s, settings, MODEL, "v1", t0, end, "reference", arm="all", activate=True
        )
    with unit_of_work(session_factory(engine)) as s:
        # every log is committed already: no need to wait for the settle delay
        close_windows(s, settings, datetime.now(UTC), settle_seconds=0)
    return Evaluator(engine, settings).tick()
