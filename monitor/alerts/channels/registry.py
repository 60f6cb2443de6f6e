"""Alert channel types by their ``type`` key: a new channel is one module and one line here.

>>> sorted(CHANNELS)
['alertmanager', 'pagerduty', 'slack', 'webhook']
>>> parse_channel({"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}).name
'slack'
"""

from __future__ import annotations

from typing import Any

from monitor.alerts.channels.alertmanager import AlertmanagerChannel
from monitor.alerts.channels.base import ChannelBase
from monitor.alerts.channels.pagerduty import PagerDutyChannel
from monitor.alerts.channels.slack import SlackChannel
from monitor.alerts.channels.webhook import WebhookChannel

CHANNELS: dict[str, type[ChannelBase]] = {
    "alertmanager": AlertmanagerChannel,
    "pagerduty": PagerDutyChannel,
    "slack": SlackChannel,
    "webhook": WebhookChannel,
}


def register(model: type[ChannelBase]) -> type[ChannelBase]:
    """Add a channel type (keyed by its ``type`` default); usable as a class decorator."""
    CHANNELS[str(model.model_fields["type"].default)] = model
    return model


def parse_channel(value: Any) -> ChannelBase:
    """A channel's settings from a mapping with a known ``type``, or a ValueError."""
    if isinstance(value, ChannelBase):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"a channel is a mapping with a 'type', not {type(value).__name__}")
    kind = value.get("type")
    if kind not in CHANNELS:
        raise ValueError(f"unknown channel type {kind!r}; known: {', '.join(sorted(CHANNELS))}")
    return CHANNELS[kind].model_validate(value)
