"""Generic webhook: the alert as JSON, signed the Standard Webhooks way.

See https://www.standardwebhooks.com: headers ``webhook-id`` (the same on every retry of one
message), ``webhook-timestamp`` (unix seconds) and ``webhook-signature``: space-separated
``v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}." + body)>``, one per secret. A secret is
``whsec_`` + base64 of the key; during a rotation both the new ``secret`` and the
``previous_secret`` sign, so receivers holding either accept the message.

>>> key = "whsec_" + "c2VjcmV0LWtleS1vZi0yNC1ieXRlcyEh"
>>> headers = sign(b'{"a": 1}', "msg_1", [key], timestamp=1700000000)
>>> verify(b'{"a": 1}', headers, key, now=1700000010)
True
>>> verify(b'{"a": 2}', headers, key, now=1700000010)
False
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr, field_validator

from monitor.alerts.channels.base import ChannelBase, Request

if TYPE_CHECKING:
    from monitor.alerts.message import AlertMessage

PREFIX = "whsec_"


def key_of(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret, or a ValueError."""
    if not secret.startswith(PREFIX):
        raise ValueError(f"a webhook secret starts with {PREFIX!r} (Standard Webhooks)")
    try:
        return base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a webhook secret is {PREFIX!r} + base64: {exc}") from None


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``f"{msg_id}.{timestamp}." + body``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign(
    body: bytes, msg_id: str, secrets: Sequence[str], timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers of ``body``, one signature per secret."""
    ts = int(time.time()) if timestamp is None else timestamp
    sigs = " ".join(signature(key_of(s), msg_id, ts, body) for s in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sigs}


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """Whether one of the signatures in ``headers`` is ``secret``'s, within ``tolerance`` s."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, ts = lower["webhook-id"], int(lower["webhook-timestamp"])
        given = lower["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = signature(key_of(secret), msg_id, ts, body)
    return any(hmac.compare_digest(expected, sig) for sig in given)


class WebhookChannel(ChannelBase):
    type: Literal["webhook"] = "webhook"
    name: str = "webhook"
    url: str
    secret: SecretStr | None = None
    previous_secret: SecretStr | None = None  # still signs while receivers rotate

    @field_validator("secret", "previous_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            key_of(value.get_secret_value())
        return value

    def request(self, msg: AlertMessage, now: datetime) -> Request:
        body = json.dumps(msg.to_dict(), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Driftwatch-Event": msg.event,
            "Idempotency-Key": msg.message_id,
        }
        secrets = [s.get_secret_value() for s in (self.secret, self.previous_secret) if s]
        if secrets:  # signed at sending time: the receiver checks freshness on its clock
            headers.update(sign(body, msg.message_id, secrets))
        return self.url, body, headers
