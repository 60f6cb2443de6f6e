"""The demo's last act: drift-triggered job -> retrain on fresh labels -> INT8 -> gate -> staged
canary -> promotion, served by the reference model server on shifted digits.

``close_the_loop`` is what ``driftwatch demo`` calls after its drift alert; it prints one line
per step (``log``) and returns a summary with the figures.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from ingest.sdk import PredictionLogger
from monitor.errors import DriftwatchError
from monitor.imagestats import decode_image
from monitor.schemas import PredictionLog
from monitor.settings import Settings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from monitor.store.retrain_tables import Rollout
from monitor.store.versions import promoted_version
from retrain import jobs, registry, rollout
from retrain.deploy import target_from_settings
from retrain.digits import SHIFTS, load_digits_images, train_holdout
from retrain.gate import gate_report
from retrain.pipeline import register_baseline, run_job
from retrain.recipes import digits_input
from retrain.server import ModelServer

Emit = Callable[[list[PredictionLog]], None]


def store_emitter(sessions: sessionmaker[Session]) -> Emit:
    """Write logs straight into the store (what the ingest worker would do)."""

    def emit(logs: list[PredictionLog]) -> None:
        with unit_of_work(sessions) as session:
            insert_predictions(session, logs)

    return emit


class SdkEmitter:
    """Send served logs through the producer SDK (one logger per version, PNG thumbnails on)
    to the broker, then call ``stored(n)`` to wait until the ingest worker has stored them.

    The logs' images are their lossless PNG thumbnails, decoded and handed to the SDK as a
    model server would hand its inputs; call :meth:`close` when done.
    """

    def __init__(self, settings: Settings, stored: Callable[[int], None]) -> None:
        self.settings, self.stored = settings, stored
        self.loggers: dict[str, Any] = {}

    def __call__(self, logs: list[PredictionLog]) -> None:
        import base64

        for lg in logs:
            logger = self.loggers.get(lg.model_version)
            if logger is None:
                logger = self.loggers[lg.model_version] = PredictionLogger(
                    self.settings.kafka,
                    lg.model,
                    lg.model_version,
                    embedding_dtype="float32",
                    send_thumbnails=True,
                    max_thumbnail_bytes=self.settings.ingest.max_thumbnail_bytes,
                )
            image = None if lg.thumbnail is None else decode_image(base64.b64decode(lg.thumbnail))
            logger.log(
                lg.probability_vector(),
                embedding=lg.embedding_vector(),
                image=image,
                pixel_stats=lg.pixel_stats,
                request_id=lg.request_id,
                predicted_class=lg.predicted_class,
                latency_ms=lg.latency_ms,
                arm=lg.arm,
                label=lg.label,
                timestamp=lg.timestamp,
            )
        for logger in self.loggers.values():
            if not logger.flush() or logger.dropped or logger.failed:
                raise DriftwatchError(
                    f"the SDK lost logs: {logger.dropped} dropped, {logger.failed} failed"
                )
        self.stored(len(logs))

    def close(self) -> None:
        for logger in self.loggers.values():
            logger.close()


def shifted_stream(shift: str, seed: int) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """``draw(n)``: n shifted digits (images, labels), sampled with replacement."""

    data = load_digits_images()
    images = SHIFTS[shift](data.images)
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, len(data.labels), n)
        return images[idx], data.labels[idx]

    return draw


def serve_labelled(
    settings: Settings,
    sessions: sessionmaker[Session],
    model: str,
    n: int,
    *,
    shift: str = "rotation",
    seed: int = 0,
    prefix: str = "req",
    emit: Emit | None = None,
) -> list[PredictionLog]:
    """Serve ``n`` labelled ``shift`` requests with the current deployment and emit the logs.

    Publishes the promoted version as the only arm first when no spec exists yet.
    """

    store = registry.ArtifactStore.from_settings(settings.retrain)
    target = target_from_settings(settings.retrain)
    if not settings.retrain.deployment_spec_path.exists():
        with unit_of_work(sessions) as session:
            current = promoted_version(session, model)
            if current is None:
                raise DriftwatchError(f"model {model} has no promoted version to serve")
            rollout.publish_stable(store, target, current)
    images, labels = shifted_stream(shift, seed)(n)
    logs = ModelServer(settings.retrain.deployment_spec_path, digits_input).predict(
        images, [f"{prefix}-{i}" for i in range(n)], labels.tolist()
    )
    (emit or store_emitter(sessions))(logs)
    return logs


def close_the_loop(
    settings: Settings,
    sessions: sessionmaker[Session],
    model: str = "digits",
    *,
    shift: str = "rotation",
    trigger: str = "demo-drift",
    baseline: Any = None,
    n_fresh: int = 600,
    emit: Emit | None = None,
    log: Callable[[str], None] = print,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the loop and return ``{"job", "version", "gate", "steps", "rollout", ...}``.

    ``baseline`` (a trained :class:`~retrain.model.DigitsNet`) is registered as version ``v1``
    when the model has no promoted version yet. Fresh labelled traffic (``n_fresh`` requests of
    the ``shift``) is served and emitted first when the store holds too few labelled thumbnails.
    """

    t_start = time.perf_counter()
    emit = emit or store_emitter(sessions)
    store = registry.ArtifactStore.from_settings(settings.retrain)
    target = target_from_settings(settings.retrain)
    current = _stable_version(settings, sessions, model, baseline, log)
    rollout.publish_stable(store, target, current)
    server = ModelServer(settings.retrain.deployment_spec_path, digits_input)
    draw = shifted_stream(shift, seed)
    ids = (f"{trigger}-{i}" for i in itertools.count())

    def serve(n: int) -> list[PredictionLog]:
        images, labels = draw(n)
        out = server.predict(images, [next(ids) for _ in range(n)], labels.tolist())
        emit(out)
        return out

    first = serve(n_fresh)
    acc = float(np.mean([lg.predicted_class == lg.label for lg in first]))
    log(f"traffic: {n_fresh} fresh labelled '{shift}' requests, current accuracy {acc:.1%}")

    with unit_of_work(sessions) as session:
        job, created = jobs.enqueue_job(
            session, model, trigger, source="policy", reason=f"drift alert ({shift})"
        )
        job_id = job.id
    log(f"retrain: job {job_id} {'queued' if created else 'already queued'} ({trigger})")
    outcome = run_job(settings, sessions, job_id, progress=False, target=target)
    assert outcome is not None
    figures = outcome.figures
    if outcome.state != "succeeded":
        log(f"retrain: job {job_id} {outcome.state}: {outcome.error}")
        return {
            "job": job_id,
            "state": outcome.state,
            "error": outcome.error,
            "seconds": time.perf_counter() - t_start,
        }
    _log_candidate(sessions, model, outcome.version or "", figures, log)
    state, steps = _step_rollout(settings, sessions, store, target, outcome.rollout_id, serve, log)
    after = serve(400)
    acc_after = float(np.mean([lg.predicted_class == lg.label for lg in after]))
    log(
        f"rollout {state}; serving {server.reload().stable.version}, accuracy on '{shift}' "
        f"{acc:.1%} -> {acc_after:.1%} ({time.perf_counter() - t_start:.1f} s)"
    )
    return {
        "job": job_id,
        "state": state,
        "version": outcome.version,
        "figures": figures,
        "steps": steps,
        "accuracy_before": acc,
        "accuracy_after": acc_after,
        "rollout": outcome.rollout_id,
        "seconds": time.perf_counter() - t_start,
    }


def _stable_version(
    settings: Settings,
    sessions: sessionmaker[Session],
    model: str,
    baseline: Any,
    log: Callable[[str], None],
) -> Any:
    """The promoted version, registering ``baseline`` as ``v1`` when there is none."""
    with unit_of_work(sessions) as session:
        current = promoted_version(session, model)
    if current is None:
        if baseline is None:
            raise DriftwatchError(f"model {model} has no promoted version and no baseline")
        _, hold = train_holdout(seed=0)
        current = register_baseline(
            settings, sessions, model, "v1", baseline, hold.images, hold.labels
        )
        log(f"registry: baseline {model} {current.version} promoted")
    return current


def _step_rollout(
    settings: Settings,
    sessions: sessionmaker[Session],
    store: registry.ArtifactStore,
    target: Any,
    rollout_id: int | None,
    serve: Callable[[int], list[PredictionLog]],
    log: Callable[[str], None],
) -> tuple[str, list[dict[str, Any]]]:
    """Serve traffic and tick the rollout until it leaves ``running``; the steps it took."""
    steps: list[dict[str, Any]] = []
    state = "running"
    while state == "running":
        with unit_of_work(sessions) as session:
            ro = session.get(Rollout, rollout_id)
            assert ro is not None
            weight = ro.plan[ro.step_index]
        need = settings.retrain.step_min_logs
        serve(math.ceil(need * 100 / weight * 1.15))
        with unit_of_work(sessions) as session:
            ro = session.get(Rollout, rollout_id)
            assert ro is not None
            result = rollout.tick(session, settings, store, target, ro, datetime.now(UTC))
            state = ro.state
            last = rollout.steps(session, ro.id)[-1:] if result != "wait" else []
        for st in last:
            steps.append(
                {
                    "weight": st.weight,
                    "outcome": st.outcome,
                    "reason": st.reason,
                    "stable_accuracy": st.stable_accuracy,
                    "canary_accuracy": st.canary_accuracy,
                }
            )
            log(f"canary {st.weight:>3}%: {st.outcome} ({st.reason})")
    return state, steps


def _log_candidate(
    sessions: sessionmaker[Session],
    model: str,
    version: str,
    figures: dict[str, Any],
    log: Callable[[str], None],
) -> None:
    """Say what the candidate scored and what the offline gate decided."""
    a, s, lat = figures["accuracy"], figures["size_bytes"], figures["latency"]
    log(
        f"retrain: candidate {version}: held-out accuracy FP32 {a['fp32']:.1%}, "
        f"INT8 {a['int8']:.1%}; size {s['fp32'] / 1024:.0f} -> {s['int8'] / 1024:.0f} KiB; "
        f"batch-32 p50 {lat['fp32_b32']['p50_ms']:.2f} -> {lat['int8_b32']['p50_ms']:.2f} ms"
    )
    with unit_of_work(sessions) as session:
        report = gate_report(session, model, version)
    log("gate: " + report.replace("\n", "\n      "))
