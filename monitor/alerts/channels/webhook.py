"""Generic webhook: the alert as JSON, signed with HMAC-SHA256.

The signature header is ``X-Driftwatch-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is
``HMAC-SHA256(secret, f"{t}." + body)``; receivers check it with :func:`verify_signature`, which
also refuses old timestamps (replays).

>>> body, headers = sign(b'{"a": 1}', "s3cret", timestamp=1700000000)
>>> verify_signature(b'{"a": 1}', headers[SIGNATURE_HEADER], "s3cret", now=1700000010)
True
>>> verify_signature(b'{"a": 2}', headers[SIGNATURE_HEADER], "s3cret", now=1700000010)
False
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from monitor.alerts.message import AlertMessage
from monitor.settings import WebhookChannel

SIGNATURE_HEADER = "X-Driftwatch-Signature"


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """``body`` with the signature header for ``secret``."""
    ts = int(time.time()) if timestamp is None else timestamp
    return body, {SIGNATURE_HEADER: f"t={ts},v1={_digest(body, secret, ts)}"}


def verify_signature(
    body: bytes, header: str, secret: str, now: float | None = None, tolerance: float = 300.0
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        ts = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(given, _digest(body, secret, ts))


def request(msg: AlertMessage, channel: WebhookChannel) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of the POST for ``msg``."""
    body = json.dumps(msg.to_dict(), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Driftwatch-Event": msg.event,
        "Idempotency-Key": f"{msg.dedup_key}/{msg.event}",
    }
    if channel.secret is not None:
        headers.update(sign(body, channel.secret.get_secret_value())[1])
    return channel.url, body, headers
