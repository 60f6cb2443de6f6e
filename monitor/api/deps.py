"""What every route depends on: the API's error type, bearer-token checks, bounded parameters,
a session per request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.guard import refusal
from monitor.errors import DriftwatchError
from monitor.schemas import NAME_PATTERN
from monitor.settings import Settings
from monitor.store.db import unit_of_work

T = TypeVar("T")
R = TypeVar("R")

#: Row ids are 64-bit: anything larger is a 422, not a database overflow.
MAX_ID = 2**63 - 1
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


class ApiError(DriftwatchError):
    """A request the API refuses, with the HTTP status to answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-11-22T00:00:00Z")
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must lie between {EARLIEST.date()} and {LATEST.date()}")
    return value


#: A path id, a model or version name, a cursor, a time: bounded so no value reaches the store
#: that it cannot hold (huge ints, NUL bytes, year-1 or naive datetimes).
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN)]
NameQuery = Annotated[str | None, Query(pattern=NAME_PATTERN)]
AwareTime = Annotated[datetime, AfterValidator(_aware)]
Limit = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Page size (at most api.max_page_size).")
]
Cursor = Annotated[
    int | None, Query(ge=0, le=MAX_ID, description="next_cursor of the previous page.")
]

#: Free text a person types (who acks, why): no NUL or control characters.
LABEL_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Label = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=LABEL_PATTERN)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=LABEL_PATTERN)]

_bearer = HTTPBearer(auto_error=False, description="api.token (writes) or api.read_token")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def _check(request: Request) -> None:
    settings: Settings = request.app.state.settings
    auth = request.headers.get("Authorization", "")
    problem = refusal(settings.api, request.method, request.url.path, auth)
    if problem is not None:
        raise ApiError(*problem)


async def require_write(request: Request, _: Bearer) -> None:
    """Dependency of every write route (the guard middleware has already checked it)."""
    _check(request)


async def require_read(request: Request, _: Bearer) -> None:
    """Dependency of every read route: open unless ``api.protect_reads``."""
    _check(request)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def limit_of(request: Request, limit: int | None, default: int = 100) -> int:
    top = settings_of(request).api.max_page_size
    if limit is None:
        return min(default, top)
    if limit > top:
        raise ApiError(422, f"limit {limit} is over the maximum page size {top}")
    return limit


class Page(BaseModel, Generic[T]):
    """One page of a list, oldest or newest first as the route says."""

    items: list[T]
    next_cursor: int | None = Field(None, description="Pass as cursor for the next page.")


def page_of(rows: list[R], limit: int, item: Callable[[R], T]) -> dict[str, Any]:
    """The fields of a page of ``rows`` (fetched with ``limit + 1`` to know if more follow)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [item(r) for r in rows], "next_cursor": rows[-1].id if more else None}  # type: ignore[attr-defined]


def session_dep(request: Request) -> Iterator[Session]:
    """A session per request; committed when the route returns without error."""
    factory: sessionmaker[Session] = request.app.state.factory
    with unit_of_work(factory) as session:
        yield session


DB = Annotated[Session, Depends(session_dep)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
