"""The HTTP API: health, readiness, Prometheus metrics, and the routes in :mod:`.routes`.

Build it with :func:`create_app`; writes need ``Authorization: Bearer <settings.api.token>``,
reads too when ``settings.api.protect_reads``. Errors are JSON ``{"detail": "..."}`` with a
status that says whose fault it was.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from monitor.api.canary_routes import router as canary_router
from monitor.api.collector import StoreCollector
from monitor.api.deps import ApiError, require_read, session_dep
from monitor.api.outlier_routes import router as outlier_router
from monitor.api.retrain_routes import router as retrain_router
from monitor.api.routes import router
from monitor.errors import DriftwatchError, NotFound
from monitor.reports.status_page import status_html
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
    return {
        "driftwatch_drift_statistic",
        "driftwatch_drift_effect_size",
        "driftwatch_drift_p_value",
        "driftwatch_drift_detected",
        "driftwatch_drift_threshold",
        "driftwatch_feature_change",
        "driftwatch_drift_state",
        "driftwatch_alerts_active",
        "driftwatch_last_window_end_timestamp_seconds",
        "driftwatch_windows_evaluated",
    }


def broker_reachable(servers: list[str], timeout: float = 1.0) -> str | None:
    """None when one bootstrap server accepts a TCP connection, else why not."""
    errors = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host or server, int(port or 9092)), timeout):
                return None
        except (OSError, ValueError) as exc:
            errors.append(f"{server}: {exc}")
    return "; ".join(errors) or "no bootstrap servers configured"


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
    )
    app.state.settings, app.state.engine = settings, engine
    app.state.factory = session_factory(engine)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(app.state.factory, settings))
    registry.register(_ProcessMetrics(_store_names()))
    app.state.registry = registry

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(DriftwatchError)
    async def _bad_request(_: Request, exc: DriftwatchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/healthz", tags=["health"], summary="The process is up.")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database and the broker are reachable.",
        responses={503: {"description": "a dependency is down"}},
    )
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        if check_broker:
            problem = broker_reachable(settings.kafka.bootstrap_servers)
            checks["broker"] = "ok" if problem is None else f"unreachable: {problem}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics.",
        dependencies=[Depends(require_read)],
    )
    def metrics() -> Response:
        return Response(
            generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get(
        "/status/{model}",
        tags=["status"],
        response_class=HTMLResponse,
        summary="The model's self-contained HTML status page (inline SVG plots).",
        dependencies=[Depends(require_read)],
    )
    def status_page(model: str, session: Annotated[Session, Depends(session_dep)]) -> HTMLResponse:
        return HTMLResponse(status_html(session, settings, model))

    app.include_router(router, prefix="/api/v1")
    app.include_router(retrain_router, prefix="/api/v1")
    app.include_router(outlier_router, prefix="/api/v1")
    app.include_router(canary_router, prefix="/api/v1")
    return app
