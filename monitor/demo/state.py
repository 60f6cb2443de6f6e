"""What the stages of ``driftwatch demo`` share: the run's state, its phases, its constants."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np

from monitor.settings import Settings

WINDOW = 250
SECRET = "whsec_" + "ZGVtby13ZWJob29rLXNlY3JldC1rZXkh"  # Standard Webhooks format
Stage = Callable[["Demo"], None]


@dataclass
class Phase:
    name: str
    windows: int
    brightness: float = 0.0
    blur: float = 0.0

    @property
    def camera(self) -> str:
        if not self.brightness and not self.blur:
            return "normal camera"
        return f"brightness {self.brightness:+.0%}, blur sigma {self.blur:g}"


PHASES = (
    Phase("reference", 4),
    Phase("clean", 3),
    Phase("camera changed", 4, 0.25, 1.0),
    Phase("camera fixed", 4),
)


@dataclass
class Demo:
    """Everything the stages share."""

    workdir: Path
    started: float = field(default_factory=time.monotonic)
    settings: Settings | None = None
    broker: Any = None
    receiver: Any = None
    engine: Any = None
    factory: Any = None
    worker: Any = None
    worker_thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    logger: Any = None
    evaluator: Any = None
    net: Any = None
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    window_phase: dict[int, str] = field(default_factory=dict)
    logged: int = 0
    shifted: Phase | None = None
    fix_camera: bool = True
    clock: datetime = field(
        default_factory=lambda: (
            datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
        )
    )
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    #: what :func:`monitor.demo.loop.close_loop` did (figures for the timeline)
    loop: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        click.echo(f"[{time.monotonic() - self.started:5.1f}s] {text}")
