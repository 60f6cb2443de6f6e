"""Health, readiness, Prometheus metrics and the HTML status page (outside /api/v1)."""

from __future__ import annotations

import socket
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from monitor.api.deps import DB, NamePath, require_read, settings_of
from monitor.reports.status_page import status_html
from monitor.store.db import ping

router = APIRouter()

#: A readiness check: None when fine, else what is wrong.
Check = Callable[[], str | None]


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(description="ready or not ready")
    checks: dict[str, str] = Field(description="ok, or why not, per dependency")


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


def database_reachable(engine: Engine) -> Check:
    def check() -> str | None:
        try:
            ping(engine)
        except Exception as exc:  # any failure means not ready; the type says which
            return type(exc).__name__
        return None

    return check


@router.get("/healthz", tags=["health"], summary="The process is up.")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    tags=["health"],
    summary="The database and the broker (and any other registered check) are reachable.",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is down"}},
)
def readyz(request: Request) -> JSONResponse:
    checks: dict[str, Check] = request.app.state.ready_checks
    results = {name: check() for name, check in checks.items()}
    shown = {name: "ok" if r is None else f"unreachable: {r}" for name, r in results.items()}
    ok = all(r is None for r in results.values())
    body = Readiness(status="ready" if ok else "not ready", checks=shown)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics.",
    dependencies=[Depends(require_read)],
    response_class=PlainTextResponse,
)
def metrics(request: Request) -> PlainTextResponse:
    registry: CollectorRegistry = request.app.state.registry
    return PlainTextResponse(
        generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


@router.get(
    "/status/{model}",
    tags=["status"],
    response_class=HTMLResponse,
    summary="The model's self-contained HTML status page (inline SVG plots).",
    dependencies=[Depends(require_read)],
)
def status_page(request: Request, model: NamePath, session: DB) -> HTMLResponse:
    return HTMLResponse(status_html(session, settings_of(request), model))
