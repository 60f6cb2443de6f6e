"""Slack incoming webhook: a ``text`` fallback and Block Kit ``blocks``.

See https://api.slack.com/messaging/webhooks and https://api.slack.com/block-kit: a header
block, a section with fields, a section listing what moved, and a context block with links.
"""

from __future__ import annotations

import json
from typing import Any

from monitor.alerts.message import AlertMessage
from monitor.settings import SlackChannel

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


def request(msg: AlertMessage, channel: SlackChannel) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of the POST for ``msg``."""
    body = json.dumps({"text": msg.text(), "blocks": blocks(msg)}).encode()
    return channel.url, body, {"Content-Type": "application/json"}
