"""The one exception hierarchy of Driftwatch.

Every error Driftwatch raises on purpose derives from :class:`DriftwatchError`; third-party
errors are wrapped with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations


class DriftwatchError(Exception):
    """Root of every error Driftwatch raises on purpose."""


class ConfigError(DriftwatchError):
    """Settings are missing, contradictory or unsafe."""


class InvalidMessage(DriftwatchError):
    """A message on a topic breaks the schema; ``reason`` is a short stable code.

    The reason code is what gets counted and written to the dead-letter topic
    (``bad_json``, ``schema``, ``oversized``, ``unknown_version``, ``bad_image`` ...).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class UnknownModel(DriftwatchError):
    """A model (or model version) that Driftwatch has no profile or registry entry for."""


class StoreUnavailable(DriftwatchError):
    """The database cannot be reached or refused the write; the caller should retry."""


class BrokerUnavailable(DriftwatchError):
    """The Kafka cluster cannot be reached; the caller should retry."""


class NotFound(DriftwatchError):
    """A requested record does not exist."""


class Conflict(DriftwatchError):
    """A request conflicts with the record's state (rolling back a rollout that has ended)."""
