"""The dead-letter topic: one envelope per rejected record, always small enough to send.

An envelope is the :class:`~monitor.schemas.Rejected` record as JSON, with headers naming the
reason and the source (topic, partition, offset). One whose raw bytes would take it over the
producer's request limit carries only a prefix (``truncated: true``, ``raw_size``): the source
offset points at the original, which the topic's retention keeps.

>>> from monitor.errors import InvalidMessage
>>> rej = Rejected.of(InvalidMessage("oversized", "big"), "p", 0, 9, b"x" * 3000)
>>> small = fitted(rej, 2000)
>>> small.truncated, small.raw_size, len(small.model_dump_json()) <= 2000
(True, 3000, True)
"""

from __future__ import annotations

from typing import Any

from monitor.errors import BrokerUnavailable
from monitor.schemas import Rejected

#: The producer's ``max_request_size`` (kafka-python's default), set explicitly on it.
MAX_REQUEST_BYTES = 1_048_576
#: Room left in a request for the record batch framing, the key and the headers.
_FRAMING = 16_384


def fitted(rej: Rejected, limit: int) -> Rejected:
    """``rej``, with its raw bytes cut (on a base64 boundary) so that its JSON fits ``limit``."""
    size = len(rej.model_dump_json())
    if size <= limit:
        return rej
    keep = max(len(rej.raw) - (size - limit) - 64, 0) // 4 * 4
    return rej.model_copy(update={"raw": rej.raw[:keep], "truncated": True})


def headers(rej: Rejected) -> list[tuple[str, bytes]]:
    """The Kafka headers of ``rej``'s envelope."""
    return [
        ("reason", rej.reason.encode()),
        ("source_topic", rej.topic.encode()),
        ("source_partition", str(rej.partition).encode()),
        ("source_offset", str(rej.offset).encode()),
        ("truncated", b"1" if rej.truncated else b"0"),
    ]


def _send(producer: Any, topic: str, rej: Rejected) -> Any:
    return producer.send(
        topic,
        value=rej.model_dump_json().encode(),
        key=None if rej.key is None else rej.key.encode(),
        headers=headers(rej),
    )


def send_dead_letters(
    producer: Any, topic: str, rejected: list[Rejected], limit: int = MAX_REQUEST_BYTES
) -> None:
    """Send every envelope and wait for the broker's acknowledgement of each.

    An envelope the broker still finds too large (its own limit can be lower than the
    producer's) is sent again without raw bytes. Raises :class:`BrokerUnavailable` when the
    broker cannot be reached; the caller retries the whole step (a duplicate dead letter is
    harmless, a missing one is not).
    """
    from kafka.errors import KafkaError, MessageSizeTooLargeError

    budget = limit - _FRAMING
    try:
        sent = [(rej, _send(producer, topic, fitted(rej, budget))) for rej in rejected]
        producer.flush(timeout=30)
        too_large: list[Rejected] = []
        for rej, future in sent:
            try:
                future.get(timeout=0)
            except MessageSizeTooLargeError:
                too_large.append(rej)
        for rej in too_large:
            _send(producer, topic, fitted(rej, 0)).get(timeout=30)
    except KafkaError as exc:
        raise BrokerUnavailable(f"dead-letter send failed: {exc}") from exc
