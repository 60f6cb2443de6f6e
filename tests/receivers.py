"""Local stand-ins for the SaaS receivers that refuse what the real APIs refuse.

Each is an HTTP server on 127.0.0.1 whose ``check`` answers (status, body) for a request: a
payload outside the documented schema gets the service's own error status, so a channel that
drifts from the API fails its test the way it would fail in production.

- Alertmanager v2 ``POST /api/v2/alerts`` (``postableAlerts`` in its OpenAPI document), plus the
  client contract: active alerts re-sent before their ``endsAt``, ``endsAt`` a few minutes ahead.
- PagerDuty Events API v2 ``POST /v2/enqueue``.
- Slack incoming webhooks ``POST /services/T…/B…/…``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from monitor.demo.receiver import Received

Check = Callable[[Received], tuple[int, Any]]
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


class Enforcing:
    """An HTTP server in a thread answering each POST with ``check``; a context manager."""

    def __init__(self, check: Check) -> None:
        self.check = check
        self.accepted: list[Received] = []
        self.rejected: list[tuple[Received, Any]] = []
        owner, lock = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                item = Received(
                    "POST", self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                with lock:
                    status, reply = owner.check(item)
                    if status < 300:
                        owner.accepted.append(item)
                    else:
                        owner.rejected.append((item, reply))
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Enforcing:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _json(item: Received) -> Any:
    if "application/json" not in item.headers.get("Content-Type", ""):
        raise ValueError("Content-Type must be application/json")
    return json.loads(item.body)


def _time(value: Any) -> datetime:
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Alertmanager:
    """Alertmanager's alert store: each alert (identified by its label set) is active until its
    ``endsAt``. ``clock`` is the receiver's time, set by the test; ``gaps`` lists alerts that
    were re-sent only after they had ended (a flapping incident), ``max_ends_ahead`` bounds how
    far ahead ``endsAt`` may be (the contract: re-send every 30 s to 3 min, short ``endsAt``)."""

    def __init__(self, clock: datetime, max_ends_ahead: timedelta = timedelta(minutes=5)) -> None:
        self.clock = clock
        self.max_ends_ahead = max_ends_ahead
        self.ends: dict[frozenset[tuple[str, str]], datetime] = {}
        self.gaps: list[dict[str, str]] = []
        self.server = Enforcing(self.check)

    def active(self, at: datetime) -> list[dict[str, str]]:
        return [dict(k) for k, end in self.ends.items() if end > at]

    def check(self, item: Received) -> tuple[int, Any]:
        if item.path != "/api/v2/alerts":
            return 404, b"404 page not found"
        try:
            alerts = _json(item)
            if not isinstance(alerts, list):
                raise ValueError("body must be an array of postableAlert")
            parsed = [self._alert(a) for a in alerts]
        except ValueError as exc:
            return 400, {"code": 400, "message": str(exc)}
        for key, ends in parsed:
            last = self.ends.get(key)
            if last is not None and last <= self.clock and ends > self.clock:
                self.gaps.append(dict(key))
            self.ends[key] = ends
        return 200, b""

    def _alert(self, alert: Any) -> tuple[frozenset[tuple[str, str]], datetime]:
        allowed = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
        if not isinstance(alert, dict) or not set(alert) <= allowed or "labels" not in alert:
            raise ValueError(f"postableAlert has labels and only {sorted(allowed)}")
        for field in ("labels", "annotations"):
            for k, v in alert.get(field, {}).items():
                if not LABEL.fullmatch(k) or not isinstance(v, str):
                    raise ValueError(f"{field}: {k!r}={v!r} is not a label pair")
        if not alert["labels"]:
            raise ValueError("labels must not be empty")
        starts, ends = _time(alert["startsAt"]), _time(alert["endsAt"])
        if ends < starts:
            raise ValueError("endsAt before startsAt")
        if ends - self.clock > self.max_ends_ahead:
            raise ValueError(f"endsAt {ends} is more than {self.max_ends_ahead} ahead")
        return frozenset(alert["labels"].items()), ends


PD_SEVERITIES = {"critical", "error", "warning", "info"}


def pagerduty(item: Received) -> tuple[int, Any]:
    """The Events API v2 rules: 202 with the dedup key, else 400 ``invalid event``."""
    if item.path != "/v2/enqueue":
        return 404, {"status": "not found"}
    try:
        event = _json(item)
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            raise ValueError("'routing_key' must be a 32-character integration key")
        action = event.get("event_action")
        if action not in {"trigger", "acknowledge", "resolve"}:
            raise ValueError(f"'event_action' {action!r} is invalid")
        dedup = event.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            raise ValueError("'dedup_key' is a string of at most 255 characters")
        if action != "trigger" and not dedup:
            raise ValueError(f"'dedup_key' is required to {action}")
        if action == "trigger":
            payload = event.get("payload") or {}
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    raise ValueError(f"'payload.{field}' is missing")
            if len(payload["summary"]) > 1024 or payload["severity"] not in PD_SEVERITIES:
                raise ValueError("'payload.summary' too long or 'payload.severity' invalid")
            if "timestamp" in payload:
                _time(payload["timestamp"])
    except (ValueError, AttributeError) as exc:
        return 400, {"status": "invalid event", "message": "Event object is invalid",
                     "errors": [str(exc)]}  # fmt: skip
    return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup}


SLACK_PATH = re.compile(r"/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+")


def slack(item: Received) -> tuple[int, Any]:
    """Incoming-webhook rules: ``ok``, or ``no_service`` / ``invalid_payload``."""
    if not SLACK_PATH.fullmatch(item.path):
        return 404, b"no_service"
    try:
        body = _json(item)
        blocks = body.get("blocks", [])
        if not body.get("text") and not blocks:
            return 400, b"no_text"
        if len(blocks) > 50:
            raise ValueError("more than 50 blocks")
        for block in blocks:
            if block["type"] == "header" and (
                block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150
            ):
                raise ValueError("header is plain_text of at most 150 characters")
            if block["type"] == "section" and len(block.get("fields", [])) > 10:
                raise ValueError("a section has at most 10 fields")
    except (ValueError, KeyError, TypeError):
        return 400, b"invalid_payload"
    return 200, b"ok"
