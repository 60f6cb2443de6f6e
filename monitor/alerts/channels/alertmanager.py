"""Prometheus Alertmanager: ``POST /api/v2/alerts`` with a list of postable alerts.

Each alert has ``labels`` (identity: alertname, model, version, family, severity),
``annotations`` (summary, description, runbook_url, dashboard), ``startsAt``, ``endsAt`` and
``generatorURL`` (see Alertmanager's OpenAPI ``postableAlert``). A firing alert's ``endsAt`` is
``firing_ttl`` ahead; a resolve sets it to the resolve time, which ends the alert at once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.alerts.message import AlertMessage, parse_time
from monitor.settings import AlertmanagerChannel


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alerts(
    msg: AlertMessage, now: datetime | None = None, firing_ttl: timedelta = timedelta(hours=24)
) -> list[dict[str, Any]]:
    """The ``postableAlerts`` body of ``msg``."""
    now = now or datetime.now(UTC)
    starts = parse_time(msg.window_end) or now
    ends = now if msg.event == "resolve" else max(now, starts) + firing_ttl
    return [
        {
            "labels": {
                "alertname": "DriftwatchDrift",
                "model": msg.model,
                "version": msg.version,
                "family": msg.family,
                "severity": msg.severity,
                "alert_id": str(msg.alert_id),
            },
            "annotations": {
                "summary": msg.title,
                "description": msg.text(),
                "runbook_url": msg.runbook_url,
                "dashboard": msg.dashboard_url,
            },
            "startsAt": _iso(starts),
            "endsAt": _iso(ends),
            "generatorURL": msg.dashboard_url,
        }
    ]


def request(msg: AlertMessage, channel: AlertmanagerChannel) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of the POST for ``msg``."""
    url = channel.url.rstrip("/")
    if not url.endswith("/api/v2/alerts"):
        url += "/api/v2/alerts"
    return url, json.dumps(alerts(msg)).encode(), {"Content-Type": "application/json"}
