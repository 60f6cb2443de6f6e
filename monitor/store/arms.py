"""A stream's arm and the logs' arm: the one place ``NO_ARM`` and ``None`` translate.

Logs without an arm store NULL; their streams and windows store :data:`NO_ARM`.

>>> stream_arm(None), stream_arm("canary"), logs_arm(NO_ARM), logs_arm("canary")
('all', 'canary', None, 'canary')
"""

from __future__ import annotations

from typing import Any

from monitor.store.tables import Prediction

#: Window/stream arm of logs that carry no arm.
NO_ARM = "all"


def stream_arm(arm: str | None) -> str:
    """The stream or window arm of logs served by ``arm`` (None: no arm)."""
    return arm or NO_ARM


def logs_arm(arm: str) -> str | None:
    """The logs' arm of a stream or window arm (None for :data:`NO_ARM`)."""
    return None if arm == NO_ARM else arm


def logs_of_arm(arm: str | None) -> Any:
    """The filter on ``predictions`` for the logs' ``arm`` (None: logs without an arm)."""
    return Prediction.arm.is_(None) if arm is None else Prediction.arm == arm


def logs_of_stream_arm(arm: str) -> Any:
    """The filter on ``predictions`` for a stream or window ``arm``."""
    return logs_of_arm(logs_arm(arm))
