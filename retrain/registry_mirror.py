"""The relay that mirrors the registry to MLflow (``retrain.registry_backend: mlflow``).

Driftwatch's own registry (:mod:`retrain.registry`, SQL + :class:`~retrain.registry.ArtifactStore`)
stays the source of truth: register, promote and roll back commit there whether MLflow answers
or not. Their audit events are the outbox (:mod:`monitor.store.registry_mirror`); each
:func:`sync` (every retrain tick, under the retrain lock, so one relay at a time) delivers the
undelivered ones per model, in order, one transaction each:

- the server is down, slow or refuses the token (:class:`MlflowUnavailable`): the model's
  delivery stops at that event and is retried at the next tick; the failure is counted
  (``driftwatch_registry_mirror_failures_total{outcome="retried"}``) and the backlog is the
  gauge ``driftwatch_registry_mirror_pending``;
- the server refuses the request itself, or the version's artifacts are missing
  (:class:`MlflowRejected`, :class:`~retrain.registry.RegistryError`): the event is
  dead-lettered as a ``mlflow_mirror_failed`` audit event with the error, counted
  (``outcome="dead_lettered"``), and the relay goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import NotFound
from monitor.metrics import metric
from monitor.settings import Settings
from monitor.store import registry_mirror as outbox
from monitor.store.db import unit_of_work
from monitor.store.retrain_queries import latest_gate_report
from monitor.store.retrain_tables import ModelVersion, RegistryEvent
from retrain.mlflow_registry import (
    ONNX_FILES,
    MlflowRegistry,
    MlflowRejected,
    MlflowUnavailable,
    MlflowVersion,
)
from retrain.registry import ArtifactStore, RegistryError, get_version

log = logging.getLogger(__name__)

MIRROR = "mlflow"
#: The audit events the mirror acts on.
EVENTS = (
    "registered",
    "state_canary",
    "state_failed",
    "state_promoted",
    "state_rolled_back",
    "state_retired",
)


@dataclass
class ModelSync:
    """What one :func:`sync` did for one model."""

    delivered: int = 0
    dead_lettered: int = 0
    pending: int = 0
    error: str | None = None


class _Delivery:
    """Applies one audit event to the tracking server."""

    def __init__(self, session: Session, client: MlflowRegistry, store: ArtifactStore) -> None:
        self.session, self.client, self.store = session, client, store

    def publish(self, mv: ModelVersion) -> MlflowVersion:
        files = {name: self.store.path(mv, name) for name in ONNX_FILES if name in mv.artifacts}
        report = latest_gate_report(self.session, mv.model, mv.version)
        return self.client.publish_candidate(mv, None if report is None else report.report, files)

    def __call__(self, event: RegistryEvent) -> None:
        mv = get_version(self.session, event.model, str(event.version))
        published = self.publish(mv)
        if event.event == "state_canary":
            self.client.challenge(published)
        elif event.event == "state_promoted" or (
            event.event == "registered" and event.detail.get("state") == "promoted"
        ):
            self.client.promote(published)
        elif event.event == "state_rolled_back":
            ro = outbox.rollout_of(self.session, mv.model, mv.version)
            if ro is None:
                raise NotFound(f"{mv.model} {mv.version} was rolled back by no rollout")
            stable = self.publish(get_version(self.session, mv.model, ro.stable_version))
            self.client.roll_back(stable, candidate=published)


def sync_model(
    sessions: sessionmaker[Session], client: MlflowRegistry, store: ArtifactStore, model: str
) -> ModelSync:
    """Deliver ``model``'s undelivered events in order; stop at the first retryable failure."""
    done = ModelSync()
    while True:
        with unit_of_work(sessions) as session:
            cursor = outbox.mirror_cursor(session, MIRROR, model)
            batch = outbox.undelivered(session, model, cursor, EVENTS, limit=1)
            if not batch:
                break
            event = batch[0]
            try:
                _Delivery(session, client, store)(event)
            except MlflowUnavailable as exc:
                done.error = str(exc)
                metric("driftwatch_registry_mirror_failures_total").labels(
                    model=model, outcome="retried"
                ).inc()
                log.warning("MLflow mirror of %s paused at event %s: %s", model, event.id, exc)
                break
            except (MlflowRejected, RegistryError, NotFound) as exc:
                outbox.record_delivery(session, MIRROR, event, failed=str(exc))
                done.dead_lettered += 1
                metric("driftwatch_registry_mirror_failures_total").labels(
                    model=model, outcome="dead_lettered"
                ).inc()
                log.error("MLflow mirror gave up on %s event %s: %s", model, event.id, exc)
                continue
            outbox.record_delivery(session, MIRROR, event)
            done.delivered += 1
    with unit_of_work(sessions) as session:
        cursor = outbox.mirror_cursor(session, MIRROR, model)
        done.pending = outbox.count_undelivered(session, model, cursor, EVENTS)
    metric("driftwatch_registry_mirror_pending").labels(model=model).set(done.pending)
    return done


def sync(
    settings: Settings,
    sessions: sessionmaker[Session],
    connect: Callable[[], MlflowRegistry] | None = None,
) -> dict[str, ModelSync]:
    """Mirror every model's undelivered registry events to MLflow; a no-op for ``local``."""
    cfg = settings.retrain
    if cfg.registry_backend != "mlflow":
        return {}
    client = connect() if connect is not None else MlflowRegistry(cfg.mlflow)
    store = ArtifactStore.from_settings(cfg)
    try:
        with unit_of_work(sessions) as session:
            models = outbox.registry_models(session)
        return {model: sync_model(sessions, client, store, model) for model in models}
    finally:
        client.close()
