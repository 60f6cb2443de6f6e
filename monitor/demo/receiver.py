"""A local HTTP receiver that records what it is sent: the demo's webhook endpoint and the
stand-in for SaaS services (Slack, PagerDuty, Alertmanager) in tests.

It can be told to fail the next ``n`` requests (HTTP 500) to exercise retries.

>>> import httpx
>>> with Receiver() as rx:
...     _ = httpx.post(rx.url + "/hook", json={"a": 1})
>>> rx.received[0].json
{'a': 1}
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread; use as a context manager."""

    def __init__(
        self,
        status: int = 200,
        reply: bytes = b"ok",
        on_request: Callable[[Received], None] | None = None,
    ) -> None:
        self.status, self.reply, self.on_request = status, reply, on_request
        self.fail_next = 0
        self.received: list[Received] = []
        self.failed: list[Received] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                item = Received(
                    "POST", self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                with owner._lock:
                    failing = owner.fail_next > 0
                    if failing:
                        owner.fail_next -= 1
                        owner.failed.append(item)
                    else:
                        owner.received.append(item)
                self.send_response(500 if failing else owner.status)
                self.end_headers()
                self.wfile.write(b"receiver down" if failing else owner.reply)
                if not failing and owner.on_request is not None:
                    owner.on_request(item)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
