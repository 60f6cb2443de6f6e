"""PagerDuty Events API v2: ``trigger``, ``acknowledge`` and ``resolve`` with a stable ``dedup_key``.

See https://developer.pagerduty.com/docs/events-api-v2/trigger-events/: a trigger carries
``routing_key``, ``event_action``, ``dedup_key``, ``client``, ``client_url`` and ``payload``
(``summary`` up to 1024 characters, ``source``, ``severity`` one of critical/error/warning/info,
``timestamp``, ``component``, ``group``, ``class``, ``custom_details``) plus ``links``; an
acknowledge or a resolve needs only ``routing_key``, ``event_action`` and ``dedup_key``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import SecretStr

from monitor.alerts.channels.base import ChannelBase, Request

if TYPE_CHECKING:
    from monitor.alerts.message import AlertMessage

_SEVERITY = {"critical": "critical", "warning": "warning"}
_ACTION = {"resolve": "resolve", "acknowledge": "acknowledge"}


def event(msg: AlertMessage, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body of ``msg``."""
    action = _ACTION.get(msg.event, "trigger")
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": msg.dedup_key,
    }
    if action != "trigger":
        return body
    payload: dict[str, Any] = {
        "summary": msg.title[:1024],
        "source": f"driftwatch/{msg.model}/{msg.version}",
        "severity": _SEVERITY.get(msg.severity, "info") if msg.event != "test" else "info",
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
    if msg.window_end:
        payload["timestamp"] = msg.window_end
    body["payload"] = payload
    body["client"] = "Driftwatch"
    body["client_url"] = msg.dashboard_url
    body["links"] = [
        {"href": msg.dashboard_url, "text": "Driftwatch dashboard"},
        {"href": msg.runbook_url, "text": "Runbook"},
    ]
    return body


class PagerDutyChannel(ChannelBase):
    type: Literal["pagerduty"] = "pagerduty"
    name: str = "pagerduty"
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"

    events: ClassVar[frozenset[str]] = frozenset({"trigger", "acknowledge", "resolve", "test"})

    def request(self, msg: AlertMessage, now: datetime) -> Request:
        body = json.dumps(event(msg, self.routing_key.get_secret_value())).encode()
        return self.url, body, {"Content-Type": "application/json"}
