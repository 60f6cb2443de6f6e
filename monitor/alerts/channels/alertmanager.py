"""Prometheus Alertmanager: ``POST /api/v2/alerts`` with a list of postable alerts.

Each alert has ``labels`` (identity: alertname, model, version, family, severity),
``annotations`` (summary, description, runbook_url, dashboard), ``startsAt``, ``endsAt`` and
``generatorURL`` (see Alertmanager's OpenAPI ``postableAlert``). Alertmanager expects clients to
re-send active alerts every 30 s to 3 min with a short ``endsAt``: every delivery tick re-sends
each open alert with ``endsAt`` ``ends_after_seconds`` ahead (keep that a few ticks long), so an
alert ends by itself only if Driftwatch stops; a resolve sets ``endsAt`` to now, which ends it at
once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from monitor.alerts.channels.base import ChannelBase, Request

if TYPE_CHECKING:
    from monitor.alerts.message import AlertMessage


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert(msg: AlertMessage, now: datetime, ends_after: timedelta) -> dict[str, Any]:
    """The ``postableAlert`` of ``msg``: ending ``ends_after`` from ``now``, or now if resolved."""
    starts = datetime.fromisoformat(msg.window_end) if msg.window_end else now
    ends = now if msg.event == "resolve" else max(now, starts) + ends_after
    return {
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


class AlertmanagerChannel(ChannelBase):
    type: Literal["alertmanager"] = "alertmanager"
    name: str = "alertmanager"
    url: str
    ends_after_seconds: float = Field(180.0, gt=0)

    resend_firing: ClassVar[bool] = True

    def batch_request(self, msgs: Sequence[AlertMessage], now: datetime) -> Request:
        """One POST carrying every alert of ``msgs``."""
        url = self.url.rstrip("/")
        if not url.endswith("/api/v2/alerts"):
            url += "/api/v2/alerts"
        ends_after = timedelta(seconds=self.ends_after_seconds)
        body = json.dumps([alert(m, now, ends_after) for m in msgs]).encode()
        return url, body, {"Content-Type": "application/json"}

    def request(self, msg: AlertMessage, now: datetime) -> Request:
        return self.batch_request([msg], now)
