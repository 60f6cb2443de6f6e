"""One error body for every 4xx and 5xx the API answers, and the handlers that build it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from monitor.api.deps import ApiError
from monitor.errors import Conflict, DriftwatchError, NotFound

log = logging.getLogger(__name__)


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. ['query', 'limit'].")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """What every refused request gets back."""

    detail: str = Field(description="Why, in one sentence.")
    errors: list[ErrorItem] | None = Field(None, description="Each invalid field (422 only).")


_WHY = {
    400: "bad request",
    401: "missing or invalid bearer token",
    403: "the token may not do this, or none is configured",
    404: "no such resource",
    405: "method not allowed",
    409: "conflicts with the resource's state",
    413: "request body too large",
    415: "unsupported content type or encoding",
    422: "invalid parameters or body",
}
#: Declared on every route, so the OpenAPI document describes each refusal.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": why} for status, why in _WHY.items()
}


def _json(status: int, detail: str, errors: list[ErrorItem] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = ErrorBody(detail=detail, errors=errors).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


def _items(exc: RequestValidationError) -> list[ErrorItem]:
    # only loc/msg/type: "input" and "ctx" may hold bytes or exceptions that JSON cannot carry
    return [
        ErrorItem(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "")),
            type=str(e.get("type", "")),
        )
        for e in exc.errors()
    ]


def _errors_as_json(doc: dict[str, Any]) -> dict[str, Any]:
    """Error bodies are JSON even on routes whose success is HTML or text."""
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and content and "application/json" not in content:
                    response["content"] = {"application/json": next(iter(content.values()))}
    return doc


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal as an :class:`ErrorBody`, and the OpenAPI document saying so."""
    document = app.openapi
    app.openapi = lambda: _errors_as_json(document())  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        items = _items(exc)
        detail = "; ".join(f"{'.'.join(map(str, i.loc))}: {i.msg}" for i in items)
        return _json(422, detail or "invalid request", items)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return _json(exc.status_code, str(exc.detail))

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.detail)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(DriftwatchError)
    async def _bad_request(_: Request, exc: DriftwatchError) -> JSONResponse:
        return _json(400, str(exc))
