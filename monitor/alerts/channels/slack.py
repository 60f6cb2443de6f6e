"""Slack incoming webhook: a ``text`` fallback and Block Kit ``blocks``.

See https://api.slack.com/messaging/webhooks and https://api.slack.com/block-kit: a header
block, a section with fields, a section listing what moved, and a context block with links.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from monitor.alerts.channels.base import ChannelBase, Request

if TYPE_CHECKING:
    from monitor.alerts.message import AlertMessage

_EMOJI = {"trigger": ":rotating_light:", "resolve": ":white_check_mark:", "test": ":test_tube:"}


def blocks(msg: AlertMessage) -> list[dict[str, Any]]:
    """The Block Kit blocks of ``msg``."""

    def field(label: str, value: str) -> dict[str, str]:
        return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}

    return [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{_EMOJI[msg.event]} {msg.title}"[:150]},
        },
        {
            "type": "section",
            "fields": [
                field("Model", f"{msg.model} {msg.version}"),
                field("Family", msg.family),
                field("Severity", msg.severity),
                field("Window", f"{msg.window_start} → {msg.window_end}"),
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": (f"{msg.statistic_line}\n*Moved:* {msg.moved}")},
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": (
                        f"<{msg.dashboard_url}|Dashboard> · <{msg.runbook_url}|Runbook>: {msg.runbook}"
                    ),
                }
            ],
        },
    ]


class SlackChannel(ChannelBase):
    """The incoming-webhook URL is a credential: a secret, never shown or logged."""

    type: Literal["slack"] = "slack"
    name: str = "slack"
    url: SecretStr

    def request(self, msg: AlertMessage, now: datetime) -> Request:
        body = json.dumps({"text": msg.text(), "blocks": blocks(msg)}).encode()
        return self.url.get_secret_value(), body, {"Content-Type": "application/json"}
