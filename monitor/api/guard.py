"""The API's front door, an ASGI middleware: who may call, and how much they may send.

Everything here runs before a route reads a byte of the body: the bearer token is checked
(writes need ``api.token``; reads need it or ``api.read_token`` when ``api.protect_reads``),
then the body's type and size. A declared ``Content-Length`` over the limit is refused at once;
a chunked body is counted as it streams and refused (413) the moment it passes the limit, so
an anonymous or oversized upload never costs more memory than one limit.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException

from monitor.settings import ApiSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"})
#: POSTs that only ask a question (Flagger's webhooks, which cannot carry a token): reads.
QUESTION_PATHS = ("/api/v1/canary/flagger/",)
JSON = frozenset({"application/json"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit (FastAPI re-raises it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the {limit}-byte limit")


@dataclass(frozen=True)
class BodyRule:
    """What one route accepts as a body: at most ``limit`` bytes of one of ``media_types``."""

    limit: int
    media_types: frozenset[str] = field(default=JSON)
    #: True when a body without a Content-Type is taken as the first media type.
    untyped_ok: bool = False


def _same(given: str, secret: Any) -> bool:
    """Constant-time comparison with a configured ``SecretStr`` (False when unset)."""
    if secret is None:
        return False
    return hmac.compare_digest(given.encode(), secret.get_secret_value().encode())


def refusal(settings: ApiSettings, method: str, path: str, auth: str) -> tuple[int, str] | None:
    """None when the call may go on, else (status, why): 401 no/bad token, 403 not allowed."""
    write = method not in SAFE_METHODS and not path.startswith(QUESTION_PATHS)
    if path in PUBLIC_PATHS or (not write and not settings.protect_reads):
        return None
    if write and settings.token is None:
        return 403, "writes are disabled: no api.token is configured (set DRIFTWATCH_API__TOKEN)"
    if not write and settings.token is None and settings.read_token is None:
        return 403, "reads are protected but no api.token or api.read_token is configured"
    scheme, _, given = auth.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return 401, "missing bearer token: send 'Authorization: Bearer <token>'"
    writer, reader = _same(given, settings.token), _same(given, settings.read_token)
    if writer or (reader and not write):
        return None
    if reader:
        return 403, "the read token cannot write: use api.token"
    return 401, "invalid bearer token"


def _body_problem(rule: BodyRule, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
    encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
    if encoding not in ("", "identity"):
        return 415, f"Content-Encoding {encoding!r} is not accepted: send the body uncompressed"
    length = headers.get(b"content-length")
    chunked = b"transfer-encoding" in headers
    if length is not None:
        if not length.isdigit():
            return 400, "Content-Length is not a number"
        if int(length) > rule.limit:
            return 413, f"request body of {int(length)} bytes is over the {rule.limit}-byte limit"
    if not chunked and (length is None or int(length) == 0):
        return None
    media = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if (not media and rule.untyped_ok) or media in rule.media_types:
        return None
    wanted = " or ".join(sorted(rule.media_types))
    return 415, f"Content-Type {media or 'missing'}: this route takes {wanted}"


class Guard:
    """Authentication, content type and body size, before the application sees the request."""

    def __init__(
        self, app: ASGIApp, settings: ApiSettings, rules: dict[str, BodyRule] | None = None
    ) -> None:
        self.app, self.settings = app, settings
        self.rules = rules or {}
        self.default = BodyRule(settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path, method = scope["path"], scope["method"]
        problem = refusal(
            self.settings, method, path, headers.get(b"authorization", b"").decode("latin-1")
        )
        rule = self.rules.get(path, self.default)
        if problem is None and method not in SAFE_METHODS:
            problem = _body_problem(rule, headers)
        if problem is not None:
            await _drain_small(receive, headers, rule.limit)
            await _answer(send, *problem)
            return
        await self.app(scope, _counted(receive, rule.limit), send)


def _counted(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BodyTooLarge(limit)
        return message

    return counted


async def _drain_small(receive: Receive, headers: dict[bytes, bytes], limit: int) -> None:
    """Read and drop a declared body within ``limit`` before refusing the request: a server
    that closes with unread bytes resets the connection, and the client may lose the answer.
    Bodies over the limit, or of unknown length, are never read."""
    declared = headers.get(b"content-length", b"")
    if not declared.isdigit() or int(declared) > limit:
        return
    while (await receive()).get("more_body", False):
        pass


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail, "errors": None}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    # The body may still be on its way: close the connection rather than read it.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
