"""The API under attack: schemathesis against the served API, and oversized or compressed bodies.

schemathesis generates requests (valid and invalid) for every operation of the API's own OpenAPI
document and sends them over HTTP to the application served by uvicorn on a real port, on SQLite
and PostgreSQL, with the write token and without one. Every answer must be a declared status
with a body that fits the published schema; no 5xx; and without a token no write gets through.
The examples are bounded (``EXAMPLES`` per mode) so one backend takes well under a minute.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.api.guard import QUESTION_PATHS
from monitor.settings import ApiSettings, Settings
from tests.conftest import poll_until
from tests.seed import seed_drift

TOKEN = "fuzz-token-for-tests-only"
READ_TOKEN = "fuzz-read-token-for-tests"
EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NOW = datetime.now(UTC).replace(microsecond=0)


def serve(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free port until the generator closes; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    poll_until(lambda: server.started, 20, "the API to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def api_url(
    db_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
) -> Iterator[str]:
    seed_drift(sessions, NOW, n_windows=1)
    api = ApiSettings(
        token=TOKEN, read_token=READ_TOKEN, max_page_size=50, max_upload_bytes=64 * 1024
    )
    app = create_app(settings_for(db_url, api=api), engine, check_broker=False)
    yield from serve(app)


def _send(client: httpx.Client, case: Any, url: str, headers: dict[str, str]) -> httpx.Response:
    """The case as schemathesis serialises it, sent with httpx (one client, keep-alive)."""
    kwargs = case.as_transport_kwargs(base_url=url, headers=headers)
    kwargs.pop("timeout", None)
    prepared = requests.Request(**kwargs).prepare()
    if "Authorization" not in headers:  # anonymous: drop the scheme's generated credentials
        prepared.headers.pop("Authorization", None)
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    return client.request(
        str(prepared.method), str(prepared.url), content=body, headers=dict(prepared.headers)
    )


def _fuzz(
    url: str, headers: dict[str, str], mode: GenerationMode, writes_only: bool = False
) -> list[tuple[Any, Any]]:
    """Every (case, response) of ``EXAMPLES`` cases per operation; failures fail, listed."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    seen: list[tuple[Any, Any]] = []
    failures: Counter[str] = Counter()
    with httpx.Client(timeout=30) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            if not (writes_only and operation.method.upper() == "GET"):
                _fuzz_operation(operation, client, url, headers, mode, seen, failures)
    assert not failures, "\n".join(f"{n}x {f}" for f, n in failures.most_common())
    return seen


def _fuzz_operation(
    operation: Any,
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    mode: GenerationMode,
    seen: list[tuple[Any, Any]],
    failures: Counter[str],
) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = _send(client, case, url, headers)
        except httpx.LocalProtocolError:  # a header value no HTTP client can send
            hypothesis.reject()
        seen.append((case, response))
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseExceptionGroup as group:  # one line per distinct failure, reported together
            first = " | ".join(str(e).strip().splitlines()[0][:160] for e in group.exceptions)
            failures[f"{case.method} {case.path} -> {response.status_code}: {first}"] += 1

    try:
        run()
    except hypothesis.errors.Unsatisfiable:  # negative mode: nothing to make invalid (/healthz)
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_with_the_write_token(api_url: str, mode: GenerationMode) -> None:
    seen = _fuzz(api_url, {"Authorization": f"Bearer {TOKEN}"}, mode)
    statuses = Counter(r.status_code for _, r in seen)
    assert not [s for s in statuses if s >= 500], statuses
    # the fuzzer reached the routes (not only refusals at the door)
    assert statuses[200] > 0 and sum(n for s, n in statuses.items() if s in (404, 422)) > 0


def _writes(case: Any) -> bool:
    """A request that changes something: not a GET, and not one of Flagger's question POSTs
    (which the guard takes as reads: monitor/api/guard.py QUESTION_PATHS)."""
    return case.method != "GET" and not case.path.startswith(QUESTION_PATHS)


def test_fuzz_without_a_token_refuses_every_write(api_url: str) -> None:
    seen = _fuzz(api_url, {}, GenerationMode.POSITIVE)
    writes = [(c.method, c.path, r.status_code) for c, r in seen if _writes(c)]
    assert writes, "the fuzzer sent no write"
    assert {status for *_, status in writes} == {401}, writes[:10]


def test_fuzz_with_the_read_token_refuses_every_write(api_url: str) -> None:
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    seen = _fuzz(api_url, read, GenerationMode.POSITIVE, writes_only=True)
    writes = {r.status_code for c, r in seen if _writes(c)}
    assert writes == {403}, writes
