"""PagerDuty Events API v2: ``trigger`` and ``resolve`` with a stable ``dedup_key``.

See https://developer.pagerduty.com/docs/events-api-v2/trigger-events/: a trigger carries
``routing_key``, ``event_action``, ``dedup_key`` and ``payload`` (``summary`` up to 1024
characters, ``source``, ``severity`` one of critical/error/warning/info, ``timestamp``,
``component``, ``group``, ``class``, ``custom_details``) plus ``links``; a resolve needs only
``routing_key``, ``event_action`` and ``dedup_key``.
"""

from __future__ import annotations

import json
from typing import Any

from monitor.alerts.message import AlertMessage
from monitor.settings import PagerDutyChannel

_SEVERITY = {"critical": "critical", "warning": "warning"}


def event(msg: AlertMessage, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body of ``msg``."""
    action = "resolve" if msg.event == "resolve" else "trigger"
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": msg.dedup_key,
    }
    if action == "trigger":
        body["payload"] = {
            "summary": msg.title[:1024],
            "source": f"driftwatch/{msg.model}/{msg.version}",
            "severity": _SEVERITY.get(msg.severity, "info") if msg.event != "test" else "info",
            "timestamp": msg.window_end or None,
            "component": msg.model,
            "group": msg.version,
            "class": f"drift.{msg.family}",
            "custom_details": {
                "statistic": msg.statistic_line,
                "moved": list(msg.top_features),
                "window": msg.window_line,
                "runbook": msg.runbook,
            },
        }
        if body["payload"]["timestamp"] is None:
            del body["payload"]["timestamp"]
        body["links"] = [
            {"href": msg.dashboard_url, "text": "Driftwatch dashboard"},
            {"href": msg.runbook_url, "text": "Runbook"},
        ]
    return body


def request(msg: AlertMessage, channel: PagerDutyChannel) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of the POST for ``msg``."""
    body = json.dumps(event(msg, channel.routing_key.get_secret_value())).encode()
    return channel.url, body, {"Content-Type": "application/json"}
