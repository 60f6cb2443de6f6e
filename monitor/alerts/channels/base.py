"""What every alert channel is: a settings model that knows how to build its HTTP request.

A channel type is one module holding one subclass of :class:`ChannelBase` (its ``type`` field a
``Literal``), registered by one line in :mod:`monitor.alerts.channels.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from monitor.alerts.message import AlertMessage, Event

Request = tuple[str, bytes, dict[str, str]]


class ChannelBase(BaseModel):
    """One configured destination of alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str

    #: The events this service understands; others are not queued for it.
    events: ClassVar[frozenset[str]] = frozenset({"trigger", "resolve", "test"})
    #: Whether open alerts are re-sent on every delivery tick (Alertmanager's contract).
    resend_firing: ClassVar[bool] = False

    def accepts(self, event: Event) -> bool:
        return event in self.events

    def request(self, msg: AlertMessage, now: datetime) -> Request:
        """(url, body, headers) of the POST that carries ``msg`` at ``now``."""
        raise NotImplementedError

    def batch_request(self, msgs: Sequence[AlertMessage], now: datetime) -> Request:
        """One POST re-sending ``msgs`` (channels with ``resend_firing``)."""
        raise NotImplementedError
