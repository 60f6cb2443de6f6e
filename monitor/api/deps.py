"""What every route depends on: the API's error type, bearer-token checks, a session per request."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import DriftwatchError
from monitor.settings import Settings
from monitor.store.db import unit_of_work


class ApiError(DriftwatchError):
    """A request the API refuses, with the HTTP status to answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _token_ok(request: Request, settings: Settings) -> None:
    token = settings.api.token
    if token is None:
        raise ApiError(
            403, "writes are disabled: no api.token is configured (set DRIFTWATCH_API__TOKEN)"
        )
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise ApiError(401, "invalid bearer token")


async def require_write(request: Request) -> None:
    """Dependency of every write route (async: no I/O, so no thread hop)."""
    _token_ok(request, request.app.state.settings)


async def require_read(request: Request) -> None:
    """Dependency of every read route: open unless ``api.protect_reads``."""
    settings: Settings = request.app.state.settings
    if settings.api.protect_reads:
        _token_ok(request, settings)


def session_dep(request: Request) -> Iterator[Session]:
    """A session per request; committed when the route returns without error."""
    factory: sessionmaker[Session] = request.app.state.factory
    with unit_of_work(factory) as session:
        yield session
