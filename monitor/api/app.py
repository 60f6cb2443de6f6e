"""The HTTP API: :func:`create_app` puts the guard (:mod:`.guard`) in front of the routes in
:mod:`.routes` (one module per resource).

Writes need ``Authorization: Bearer <api.token>``; reads need it or ``api.read_token`` when
``api.protect_reads``. Every refusal is an :class:`~monitor.api.errors.ErrorBody` with a status
that says whose fault it was. Readiness checks live in ``app.state.ready_checks`` (name ->
callable returning None or what is wrong), so a process that runs more (an ingest worker) can
add its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from monitor.api.collector import STORE_METRICS, StoreCollector
from monitor.api.errors import ERROR_RESPONSES, install_error_handlers
from monitor.api.guard import BodyRule, Guard
from monitor.api.routes import (
    alerts,
    canary,
    health,
    logs,
    models,
    outliers,
    profiles,
    retrain,
    rollouts,
)
from monitor.api.routes.health import broker_reachable, database_reachable
from monitor.settings import Settings
from monitor.store.db import make_engine, session_factory

log = logging.getLogger(__name__)


class _ProcessMetrics(Collector):
    """This process's own metrics, minus the names the store collector answers for."""

    def __init__(self, skip: set[str]) -> None:
        self.skip = skip

    def collect(self) -> Iterator[Any]:
        for family in REGISTRY.collect():
            if family.name not in self.skip:
                yield family


def _store_names() -> set[str]:
    return set(STORE_METRICS)


#: The resources under /api/v1, one router each: a new resource is one line here.
ROUTERS = (
    models.router,
    alerts.router,
    profiles.router,
    outliers.router,
    retrain.router,
    rollouts.router,
    logs.router,
    canary.router,
)


def _body_rules(settings: Settings) -> dict[str, BodyRule]:
    """Routes whose body is not a small JSON document."""
    upload = BodyRule(
        settings.api.max_upload_bytes, frozenset({"application/octet-stream"}), untyped_ok=True
    )
    # a batch of logs: as large as a Kafka batch of them may be
    logs = BodyRule(settings.api.max_upload_bytes, frozenset({"application/json"}))
    return {
        "/api/v1/profiles/upload": upload,
        "/api/v1/logs": logs,
        "/api/v1/logs/kserve": logs,
    }


def create_app(
    settings: Settings, engine: Engine | None = None, check_broker: bool = True
) -> FastAPI:
    """The FastAPI application over ``settings.database`` (or ``engine``)."""

    engine = engine or make_engine(settings.database)
    app = FastAPI(
        title="Driftwatch",
        version="1",
        description="Drift monitoring of image classifiers: models, drift history, alerts, "
        "reference profiles. Writes need a bearer token.",
        responses=ERROR_RESPONSES,
    )
    app.state.settings, app.state.engine = settings, engine
    app.state.factory = session_factory(engine)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(app.state.factory, settings))
    registry.register(_ProcessMetrics(_store_names()))
    app.state.registry = registry
    app.state.ready_checks = {"database": database_reachable(engine)}
    if check_broker:
        servers = settings.kafka.bootstrap_servers
        app.state.ready_checks["broker"] = lambda: broker_reachable(servers)

    install_error_handlers(app)
    app.add_middleware(Guard, settings=settings.api, rules=_body_rules(settings))

    app.include_router(health.router)
    for api_router in ROUTERS:
        app.include_router(api_router, prefix="/api/v1")
    return app
